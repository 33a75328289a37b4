"""The openlineage-python client (OpenLineage's reference producer library) posting to Quiver.

    python openlineage_events.py ENDPOINT API_KEY|- DATABASE.TABLE
    python openlineage_events.py ENDPOINT API_KEY|- one

Emits, through the client's HTTP transport (with API_KEY as its `api_key` auth, unless `-`): a
run of job `etl.orders_daily` (START, then COMPLETE) reading a Postgres table and a feature
group's offline table (DATABASE.TABLE, as its catalog names it), writing an S3 dataset with a columnLineage facet; a second run of
another job reading that output (FAIL, with an error message); and a JobEvent (static lineage).
Then asks QueryLineage, through boto3, what is upstream of the second job's input. Prints what
it observed as JSON. With `one`, only one START event (for the authentication tests).
"""

import json
import sys
import uuid
from datetime import datetime, timezone

import boto3
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, JobEvent, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import column_lineage_dataset as cl
from openlineage.client.facet_v2 import error_message_run, sql_job

ENDPOINT, API_KEY, TABLE = sys.argv[1], sys.argv[2], sys.argv[3]
transport = {"type": "http", "url": ENDPOINT, "endpoint": "api/v1/lineage"}
if API_KEY != "-":
    transport["auth"] = {"type": "api_key", "apiKey": API_KEY}
client = OpenLineageClient(config={"transport": transport})
PRODUCER = "https://github.com/quiver/tests/openlineage_events.py"
now = lambda: datetime.now(timezone.utc).isoformat()  # noqa: E731

seen = {}
if TABLE == "one":
    # Just one event (for the authentication check): the HTTP status it got.
    import requests

    try:
        client.emit(RunEvent(eventType=RunState.START, eventTime=now(), run=Run(runId=str(uuid.uuid4())),
                             job=Job(namespace="airflow", name="probe"), producer=PRODUCER))
        print(json.dumps({"status": 201}))
    except requests.HTTPError as e:
        print(json.dumps({"status": e.response.status_code}))
    sys.exit(0)

orders = InputDataset(namespace="postgres://db:5432", name="shop.public.orders")
group_table = InputDataset(namespace="awsathena://athena.us-east-1.amazonaws.com", name=TABLE)
daily = OutputDataset(
    namespace="s3://warehouse",
    name="orders_daily",
    facets={
        "columnLineage": cl.ColumnLineageDatasetFacet(
            fields={
                "total": cl.Fields(
                    inputFields=[
                        cl.InputField(namespace="postgres://db:5432", name="shop.public.orders", field="amount",
                                      transformations=[cl.Transformation(type="AGGREGATION", subtype="SUM")]),
                    ]
                ),
                "customer": cl.Fields(
                    inputFields=[cl.InputField(namespace="postgres://db:5432", name="shop.public.orders", field="customer_id")],
                    transformationType="IDENTITY",
                ),
            }
        )
    },
)
job = Job(namespace="airflow", name="etl.orders_daily", facets={"sql": sql_job.SQLJobFacet(query="SELECT customer_id, sum(amount) FROM orders GROUP BY 1")})
run_id = str(uuid.uuid4())
client.emit(RunEvent(eventType=RunState.START, eventTime=now(), run=Run(runId=run_id), job=job, inputs=[orders, group_table], outputs=[daily], producer=PRODUCER))
client.emit(RunEvent(eventType=RunState.COMPLETE, eventTime=now(), run=Run(runId=run_id), job=job, inputs=[orders, group_table], outputs=[daily], producer=PRODUCER))

report = OutputDataset(
    namespace="s3://warehouse",
    name="report",
    facets={"columnLineage": cl.ColumnLineageDatasetFacet(fields={"revenue": cl.Fields(inputFields=[cl.InputField(namespace="s3://warehouse", name="orders_daily", field="total")])})},
)
failed_run = str(uuid.uuid4())
client.emit(RunEvent(
    eventType=RunState.FAIL, eventTime=now(),
    run=Run(runId=failed_run, facets={"errorMessage": error_message_run.ErrorMessageRunFacet(message="division by zero", programmingLanguage="python")}),
    job=Job(namespace="airflow", name="reports.revenue"),
    inputs=[InputDataset(namespace="s3://warehouse", name="orders_daily")], outputs=[report], producer=PRODUCER,
))
client.emit(JobEvent(eventTime=now(), job=Job(namespace="dbt", name="models.customers"),
                     inputs=[InputDataset(namespace="postgres://db:5432", name="shop.public.orders")],
                     outputs=[OutputDataset(namespace="s3://warehouse", name="customers")], producer=PRODUCER))

sm = boto3.client("sagemaker", endpoint_url=ENDPOINT, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
artifacts = {a["Source"]["SourceUri"]: a["ArtifactArn"] for a in sm.list_artifacts(MaxResults=100)["ArtifactSummaries"]}
seen["artifacts"] = sorted(artifacts)
up = sm.query_lineage(StartArns=[artifacts["s3://warehouse/report"]], Direction="Ascendants", IncludeEdges=True, IncludeSource=True)
seen["upstream_of_report"] = sorted((v["LineageType"], v["Type"], v["Source"]["SourceUri"]) for v in up["Vertices"])
seen["upstream_edges"] = sorted(e.get("AssociationType", "") for e in up["Edges"])
runs = {a["ActionName"]: a for a in sm.list_actions(ActionType="JobRun")["ActionSummaries"]}
seen["runs"] = sorted((name.startswith("ol-run-"), a["Status"]) for name, a in runs.items())
failed = sm.describe_action(ActionName=f"ol-run-{failed_run}")
seen["failed_run"] = {"status": failed["Status"], "error": failed["Properties"].get("ErrorMessage"), "job": failed["Properties"].get("JobName")}
jobs = sm.list_actions(ActionType="Job")["ActionSummaries"]
seen["jobs"] = sorted(j["Source"]["SourceUri"] for j in jobs)
seen["daily_same_as_group"] = [
    (a["AssociationType"], a["DestinationType"])
    for a in sm.list_associations(SourceArn=artifacts.get("awsathena://athena.us-east-1.amazonaws.com/" + group_table.name, ""))["AssociationSummaries"]
    if a.get("AssociationType") == "SameAs"
] if ("awsathena://athena.us-east-1.amazonaws.com/" + group_table.name) in artifacts else "missing"
print(json.dumps(seen))
