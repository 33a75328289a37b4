"""boto3's lineage operations against Quiver's SageMaker-compatible API.

    python sagemaker_lineage.py http://127.0.0.1:PORT checks    # every check below
    python sagemaker_lineage.py http://127.0.0.1:PORT seed      # a small graph, before a restart
    python sagemaker_lineage.py http://127.0.0.1:PORT verify    # ... and the same graph after it
    python sagemaker_lineage.py http://127.0.0.1:PORT off       # a server started with --lineage false

Prints {"passed": [names], "failed": [{"name", "error"}]} as JSON. Each check asserts what
botocore parsed: field names, types, error codes and messages, pages. The QueryLineage check
builds a graph of 1,200 entities and compares every answer with a walk written here.
"""

import collections
import datetime
import json
import random
import sys
import traceback

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT, MODE = sys.argv[1], sys.argv[2]
sm = boto3.client(
    "sagemaker",
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
    config=Config(retries={"max_attempts": 1}),
)
ARN_PREFIX = "arn:aws:sagemaker:us-east-1:000000000000:"
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def error_of(call, **kwargs):
    """The ClientError a call raises: (code, message)."""
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError(f"{call.__name__} succeeded; an error was expected")


def expect_error(code, words, call, **kwargs):
    got, message = error_of(call, **kwargs)
    assert got == code, (got, message)
    for word in words:
        assert word in message, (word, message)


def all_pages(method, key, **kwargs):
    items = []
    for page in sm.get_paginator(method).paginate(**kwargs):
        items += page[key]
    return items


@check
def artifacts():
    arn = sm.create_artifact(
        ArtifactName="raw-orders",
        Source={
            "SourceUri": "s3://bucket/orders.csv",
            "SourceTypes": [{"SourceIdType": "S3ETag", "Value": "abc123"}],
        },
        ArtifactType="DataSet",
        Properties={"rows": "100", "format": "csv"},
        MetadataProperties={"CommitId": "deadbeef", "Repository": "git://r"},
        Tags=[{"Key": "team", "Value": "ml"}],
    )["ArtifactArn"]
    assert arn.startswith(ARN_PREFIX + "artifact/") and len(arn.rsplit("/", 1)[1]) == 32, arn
    d = sm.describe_artifact(ArtifactArn=arn)
    assert d["ArtifactName"] == "raw-orders" and d["ArtifactArn"] == arn, d
    assert d["Source"] == {
        "SourceUri": "s3://bucket/orders.csv",
        "SourceTypes": [{"SourceIdType": "S3ETag", "Value": "abc123"}],
    }, d["Source"]
    assert d["ArtifactType"] == "DataSet" and d["Properties"] == {"rows": "100", "format": "csv"}
    assert d["MetadataProperties"] == {"CommitId": "deadbeef", "Repository": "git://r"}
    assert isinstance(d["CreationTime"], datetime.datetime), d
    assert d["LastModifiedTime"] >= d["CreationTime"]

    sm.update_artifact(
        ArtifactArn=arn, ArtifactName="orders", Properties={"rows": "120"}, PropertiesToRemove=["format"]
    )
    d = sm.describe_artifact(ArtifactArn=arn)
    assert d["ArtifactName"] == "orders" and d["Properties"] == {"rows": "120"}, d

    second = sm.create_artifact(Source={"SourceUri": "s3://bucket/model.tar.gz"}, ArtifactType="Model")[
        "ArtifactArn"
    ]
    listed = sm.list_artifacts(SourceUri="s3://bucket/orders.csv")["ArtifactSummaries"]
    assert [a["ArtifactArn"] for a in listed] == [arn], listed
    assert listed[0]["ArtifactType"] == "DataSet" and listed[0]["ArtifactName"] == "orders"
    models = sm.list_artifacts(ArtifactType="Model")["ArtifactSummaries"]
    assert [a["ArtifactArn"] for a in models] == [second], models

    assert sm.delete_artifact(ArtifactArn=arn)["ArtifactArn"] == arn
    expect_error("ResourceNotFound", ["does not exist"], sm.describe_artifact, ArtifactArn=arn)
    assert sm.delete_artifact(Source={"SourceUri": "s3://bucket/model.tar.gz"})["ArtifactArn"] == second
    expect_error("ResourceNotFound", [], sm.delete_artifact, ArtifactArn=second)
    expect_error("ValidationException", ["ArtifactArn or Source"], sm.delete_artifact)


@check
def actions_and_contexts():
    arn = sm.create_action(
        ActionName="Train-Model",
        Source={"SourceUri": "s3://bucket/job", "SourceType": "Job", "SourceId": "j-1"},
        ActionType="TrainingJob",
        Description="nightly training",
        Status="InProgress",
        Properties={"epochs": "3"},
    )["ActionArn"]
    assert arn == ARN_PREFIX + "action/train-model", arn
    for name in ["Train-Model", "train-model", arn]:
        d = sm.describe_action(ActionName=name)
        assert d["ActionArn"] == arn and d["ActionName"] == "Train-Model", d
    assert d["Status"] == "InProgress" and d["Description"] == "nightly training"
    assert d["Source"] == {"SourceUri": "s3://bucket/job", "SourceType": "Job", "SourceId": "j-1"}
    expect_error(
        "ValidationException",
        ["already exists"],
        sm.create_action,
        ActionName="train-model",
        Source={"SourceUri": "x"},
        ActionType="t",
    )
    sm.update_action(ActionName="train-model", Status="Completed", Properties={"loss": "0.1"})
    d = sm.describe_action(ActionName=arn)
    assert d["Status"] == "Completed" and d["Properties"] == {"epochs": "3", "loss": "0.1"}, d
    expect_error("ValidationException", ["Status", "Done"], sm.update_action, ActionName=arn, Status="Done")
    expect_error("ResourceNotFound", [], sm.update_action, ActionName="nope", Status="Failed")

    ctx = sm.create_context(
        ContextName="fg_orders-1",
        Source={"SourceUri": ARN_PREFIX + "feature-group/orders"},
        ContextType="FeatureGroupPipeline",
        Description="orders",
    )["ContextArn"]
    assert ctx == ARN_PREFIX + "context/fg_orders-1", ctx
    d = sm.describe_context(ContextName=ctx)
    assert d["ContextName"] == "fg_orders-1" and d["ContextType"] == "FeatureGroupPipeline", d
    assert "MetadataProperties" not in d
    sm.update_context(ContextName="fg_orders-1", Description="all orders", Properties={"a": "b"})
    assert sm.describe_context(ContextName="fg_orders-1")["Description"] == "all orders"
    actions = sm.list_actions(ActionType="TrainingJob")["ActionSummaries"]
    assert [(a["ActionName"], a["Status"]) for a in actions] == [("Train-Model", "Completed")], actions
    assert sm.delete_action(ActionName="Train-Model")["ActionArn"] == arn
    assert sm.delete_context(ContextName="fg_orders-1")["ContextArn"] == ctx
    expect_error("ResourceNotFound", [], sm.describe_context, ContextName="fg_orders-1")
    expect_error("ResourceNotFound", [], sm.delete_action, ActionName="Train-Model")


@check
def listings_sort_filter_and_page():
    created = []
    for i in range(23):
        created.append(
            sm.create_context(
                ContextName=f"page-{i:02d}",
                Source={"SourceUri": f"uri-{i % 3}"},
                ContextType="Even" if i % 2 == 0 else "Odd",
            )["ContextArn"]
        )
    names = [c["ContextName"] for c in all_pages("list_contexts", "ContextSummaries", SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 4})]
    assert names == [f"page-{i:02d}" for i in range(23)], names
    newest_first = [c["ContextArn"] for c in all_pages("list_contexts", "ContextSummaries")]
    assert newest_first == created[::-1], newest_first
    page = sm.list_contexts(MaxResults=5)
    assert len(page["ContextSummaries"]) == 5 and page["NextToken"], page
    odd = [c["ContextName"] for c in all_pages("list_contexts", "ContextSummaries", ContextType="Odd", SourceUri="uri-1", SortBy="Name", SortOrder="Ascending")]
    assert odd == [f"page-{i:02d}" for i in range(23) if i % 2 == 1 and i % 3 == 1], odd
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    assert sm.list_contexts(CreatedAfter=future)["ContextSummaries"] == []
    assert len(all_pages("list_contexts", "ContextSummaries", CreatedBefore=future)) == 23
    expect_error("ValidationException", ["MaxResults"], sm.list_contexts, MaxResults=101)
    expect_error("ValidationException", ["SortBy"], sm.list_artifacts, SortBy="Name")
    expect_error("ValidationException", ["NextToken"], sm.list_contexts, NextToken="not-a-token")
    for arn in created:
        sm.delete_context(ContextName=arn)


@check
def limits_are_enforced_by_the_server():
    src = {"SourceUri": "s3://b/k"}
    cases = [
        ("Properties", dict(ArtifactType="t", Source=src, Properties={f"k{i}": "v" for i in range(31)})),
        ("Properties", dict(ArtifactType="t", Source=src, Properties={"k": "v" * 4097})),
        ("Tags", dict(ArtifactType="t", Source=src, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])),
        ("Tags[0].Key", dict(ArtifactType="t", Source=src, Tags=[{"Key": "bad#key", "Value": "v"}])),
        ("ArtifactName", dict(ArtifactName="x" * 121, ArtifactType="t", Source=src)),
        ("ArtifactName", dict(ArtifactName="bad_name", ArtifactType="t", Source=src)),
        ("ArtifactType", dict(ArtifactType="t" * 257, Source=src)),
        ("Source.SourceUri", dict(ArtifactType="t", Source={"SourceUri": "s" * 2049})),
        ("Source.SourceTypes[0].SourceIdType", dict(ArtifactType="t", Source={"SourceUri": "u", "SourceTypes": [{"SourceIdType": "SHA", "Value": "v"}]})),
        ("MetadataProperties.CommitId", dict(ArtifactType="t", Source=src, MetadataProperties={"CommitId": "c" * 1025})),
    ]
    for field, kwargs in cases:
        expect_error("ValidationException", [field], sm.create_artifact, **kwargs)
    expect_error("ValidationException", ["Description"], sm.create_action, ActionName="a", Source=src, ActionType="t", Description="d" * 3073)
    expect_error("ValidationException", ["Properties"], sm.create_action, ActionName="a", Source=src, ActionType="t", Properties={"k": "v" * 2501})
    expect_error("ValidationException", ["ContextName"], sm.create_context, ContextName="-a", Source=src, ContextType="t")
    start = sm.create_context(ContextName="limits", Source=src, ContextType="t")["ContextArn"]
    expect_error("ValidationException", ["StartArns"], sm.query_lineage, StartArns=[start, start])
    expect_error("ValidationException", ["MaxDepth"], sm.query_lineage, StartArns=[start], MaxDepth=11)
    expect_error("ValidationException", ["MaxResults"], sm.query_lineage, StartArns=[start], MaxResults=51)
    expect_error("ValidationException", ["Filters.Types"], sm.query_lineage, StartArns=[start], Filters={"Types": ["a"] * 6})
    expect_error("ValidationException", ["Filters.Properties"], sm.query_lineage, StartArns=[start], Filters={"Properties": {f"k{i}": "v" for i in range(6)}})
    expect_error("ValidationException", ["StartArns[0]"], sm.query_lineage, StartArns=["arn:aws:sagemaker:us-east-1:000000000000:endpoint/e"])
    expect_error("ResourceNotFound", ["StartArns[0]"], sm.query_lineage, StartArns=[ARN_PREFIX + "context/none"])
    assert sm.describe_context(ContextName="limits")["ContextArn"] == start
    sm.delete_context(ContextName="limits")


@check
def associations():
    data = sm.create_artifact(Source={"SourceUri": "s3://b/data"}, ArtifactType="DataSet")["ArtifactArn"]
    job = sm.create_action(ActionName="assoc-job", Source={"SourceUri": "j"}, ActionType="TrainingJob")["ActionArn"]
    model = sm.create_artifact(ArtifactName="m", Source={"SourceUri": "s3://b/model"}, ArtifactType="Model")["ArtifactArn"]
    out = sm.add_association(SourceArn=data, DestinationArn=job, AssociationType="ContributedTo")
    assert (out["SourceArn"], out["DestinationArn"]) == (data, job), out
    sm.add_association(SourceArn=job, DestinationArn=model, AssociationType="Produced")
    expect_error("ValidationException", ["already exists"], sm.add_association, SourceArn=data, DestinationArn=job)
    expect_error("ResourceNotFound", ["DestinationArn"], sm.add_association, SourceArn=data, DestinationArn=ARN_PREFIX + "context/ghost")
    expect_error("ValidationException", ["AssociationType"], sm.add_association, SourceArn=model, DestinationArn=data, AssociationType="Caused")

    by_source = sm.list_associations(SourceArn=job)["AssociationSummaries"]
    assert len(by_source) == 1, by_source
    s = by_source[0]
    assert (s["SourceArn"], s["DestinationArn"], s["AssociationType"]) == (job, model, "Produced"), s
    assert (s["SourceType"], s["DestinationType"], s["SourceName"], s["DestinationName"]) == ("TrainingJob", "Model", "assoc-job", "m"), s
    assert isinstance(s["CreationTime"], datetime.datetime)
    assert [a["SourceArn"] for a in sm.list_associations(DestinationArn=job)["AssociationSummaries"]] == [data]
    assert [a["DestinationArn"] for a in sm.list_associations(AssociationType="ContributedTo", SourceType="DataSet")["AssociationSummaries"]] == [job]
    assert sm.list_associations(DestinationType="Nothing")["AssociationSummaries"] == []
    everything = all_pages("list_associations", "AssociationSummaries", SortBy="SourceType", SortOrder="Ascending", PaginationConfig={"PageSize": 1})
    assert [a["SourceType"] for a in everything] == ["DataSet", "TrainingJob"], everything
    expect_error("ValidationException", ["SortBy"], sm.list_associations, SortBy="Name")

    sm.delete_association(SourceArn=data, DestinationArn=job)
    expect_error("ResourceNotFound", [], sm.delete_association, SourceArn=data, DestinationArn=job)
    # Deleting an entity removes its associations with it.
    sm.delete_action(ActionName="assoc-job")
    assert sm.list_associations(DestinationArn=model)["AssociationSummaries"] == []
    sm.delete_artifact(ArtifactArn=data)
    sm.delete_artifact(ArtifactArn=model)


def reference_walk(edges, start, direction, depth):
    forward, backward = collections.defaultdict(list), collections.defaultdict(list)
    for s, d in edges:
        forward[s].append(d)
        backward[d].append(s)
    seen, walked, level = {start}, set(), [start]
    for _ in range(depth):
        nxt = []
        for v in level:
            steps = []
            if direction in ("Descendants", "Both"):
                steps += [(v, d, d) for d in forward[v]]
            if direction in ("Ascendants", "Both"):
                steps += [(s, v, s) for s in backward[v]]
            for s, d, far in steps:
                walked.add((s, d))
                if far not in seen:
                    seen.add(far)
                    nxt.append(far)
        level = nxt
    return seen, walked


def query_all(**kwargs):
    vertices, edges, token = [], set(), None
    while True:
        page = sm.query_lineage(**kwargs, **({"NextToken": token} if token else {}))
        assert "Vertices" in page and "Edges" in page, page
        vertices += page["Vertices"]
        edges |= {(e["SourceArn"], e["DestinationArn"]) for e in page["Edges"]}
        token = page.get("NextToken")
        if not token:
            return vertices, edges


@check
def query_lineage_matches_a_reference_walk():
    rng = random.Random(7)
    kinds = []
    arns = []
    for i in range(1200):
        kind = i % 3
        props = {"shard": str(i % 7)}
        if kind == 0:
            arn = sm.create_artifact(Source={"SourceUri": f"s3://g/{i}"}, ArtifactType="DataSet", Properties=props)["ArtifactArn"]
        elif kind == 1:
            arn = sm.create_action(ActionName=f"g-action-{i}", Source={"SourceUri": f"a{i}"}, ActionType="Job", Properties=props)["ActionArn"]
        else:
            arn = sm.create_context(ContextName=f"g-context-{i}", Source={"SourceUri": f"c{i}"}, ContextType="Endpoint", Properties=props)["ContextArn"]
        arns.append(arn)
        kinds.append(kind)
    edges = set()
    while len(edges) < 2400:
        a, b = rng.randrange(1200), rng.randrange(1200)
        if a != b and (arns[a], arns[b]) not in edges:
            sm.add_association(SourceArn=arns[a], DestinationArn=arns[b], AssociationType="ContributedTo")
            edges.add((arns[a], arns[b]))
    lineage_type = {arn: ["Artifact", "Action", "Context"][k] for arn, k in zip(arns, kinds)}
    for start in [arns[0], arns[301], arns[1102]]:
        for direction in ["Descendants", "Ascendants", "Both"]:
            for depth in [0, 1, 3, 10]:
                expected, expected_edges = reference_walk(edges, start, direction, depth)
                vertices, got_edges = query_all(StartArns=[start], Direction=direction, IncludeEdges=True, MaxDepth=depth)
                got = [v["Arn"] for v in vertices]
                assert len(got) == len(set(got)), "a vertex was returned twice"
                assert set(got) == expected, (start, direction, depth, len(got), len(expected))
                assert got_edges == expected_edges, (start, direction, depth)
                for v in vertices:
                    assert v["LineageType"] == lineage_type[v["Arn"]], v
    # Filters choose the vertices returned; the walk goes through the others.
    expected, _ = reference_walk(edges, arns[0], "Both", 2)
    want = {a for a in expected if lineage_type[a] == "Context" and sm_props(a) == "2"}
    vertices, got_edges = query_all(
        StartArns=[arns[0]], Direction="Both", MaxDepth=2, IncludeSource=True,
        Filters={"LineageTypes": ["Context"], "Types": ["Endpoint"], "Properties": {"shard": "2", "other": "x"}} ,
    )
    got = {v["Arn"] for v in vertices}
    assert got == want, (len(got), len(want))
    assert got_edges == set(), "IncludeEdges was not asked for"
    assert all(v["Source"]["SourceUri"].startswith("c") for v in vertices), vertices[:2]
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    assert query_all(StartArns=[arns[0]], Filters={"CreatedAfter": future})[0] == []
    assert len(query_all(StartArns=[arns[0]], MaxDepth=1, Filters={"ModifiedBefore": future})[0]) == len(reference_walk(edges, arns[0], "Both", 1)[0])
    # Pages of at most MaxResults; edges come with the first.
    page = sm.query_lineage(StartArns=[arns[0]], Direction="Both", MaxDepth=10, IncludeEdges=True, MaxResults=7)
    assert len(page["Vertices"]) == 7 and page["NextToken"] and page["Edges"], len(page["Vertices"])


_PROPS = {}


def sm_props(arn):
    """The shard property of a context of the query check's graph, by its name."""
    if arn not in _PROPS:
        _PROPS[arn] = sm.describe_context(ContextName=arn)["Properties"]["shard"]
    return _PROPS[arn]


@check
def lineage_groups_are_none():
    assert sm.list_lineage_groups()["LineageGroupSummaries"] == []
    expect_error("ResourceNotFound", [], sm.describe_lineage_group, LineageGroupName="g")


@check
def experiments_trials_and_trial_components():
    """The three kinds created, described, updated, associated, listed and deleted as botocore
    shapes them; deletes refused while something is still held."""
    arn = sm.create_experiment(ExperimentName="Churn-Exp", DisplayName="Churn", Description="who leaves",
                               Tags=[{"Key": "team", "Value": "ml"}])["ExperimentArn"]
    assert arn == ARN_PREFIX + "experiment/churn-exp", arn
    expect_error("ValidationException", ["already exists"], sm.create_experiment, ExperimentName="churn-exp")
    e = sm.describe_experiment(ExperimentName="churn-exp")
    assert (e["ExperimentName"], e["DisplayName"], e["Description"]) == ("Churn-Exp", "Churn", "who leaves"), e
    assert isinstance(e["CreationTime"], datetime.datetime), e
    sm.update_experiment(ExperimentName="churn-exp", Description="who leaves, and why")
    assert sm.describe_experiment(ExperimentName="churn-exp")["Description"] == "who leaves, and why"

    expect_error("ResourceNotFound", ["nope"], sm.create_trial, TrialName="t", ExperimentName="nope")
    trial = sm.create_trial(TrialName="trial-a", ExperimentName="churn-exp",
                            MetadataProperties={"CommitId": "abc123"})["TrialArn"]
    assert trial == ARN_PREFIX + "experiment-trial/trial-a", trial
    sm.create_trial(TrialName="trial-b", ExperimentName="churn-exp")
    t = sm.describe_trial(TrialName="trial-a")
    assert (t["ExperimentName"], t["MetadataProperties"]) == ("Churn-Exp", {"CommitId": "abc123"}), t
    sm.update_trial(TrialName="trial-a", DisplayName="first")
    assert sm.describe_trial(TrialName="trial-a")["DisplayName"] == "first"

    start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    tc = sm.create_trial_component(
        TrialComponentName="run-1", DisplayName="Run1",
        Status={"PrimaryStatus": "InProgress", "Message": "training"},
        StartTime=start,
        Parameters={"lr": {"NumberValue": 0.1}, "algo": {"StringValue": "gbm"}},
        InputArtifacts={"train": {"MediaType": "text/csv", "Value": "s3://b/train.csv"}},
        MetadataProperties={"GeneratedBy": "boto3"},
    )["TrialComponentArn"]
    assert tc == ARN_PREFIX + "experiment-trial-component/run-1", tc
    sm.update_trial_component(
        TrialComponentName="run-1",
        Status={"PrimaryStatus": "Completed"},
        EndTime=start + datetime.timedelta(minutes=5),
        Parameters={"depth": {"NumberValue": 6}},
        ParametersToRemove=["algo"],
        OutputArtifacts={"model": {"MediaType": "application/x-tar", "Value": "s3://b/model.tar.gz"}},
    )
    d = sm.describe_trial_component(TrialComponentName=tc)
    assert d["TrialComponentName"] == "run-1" and d["DisplayName"] == "Run1", d
    assert d["Status"] == {"PrimaryStatus": "Completed"}, d["Status"]
    assert d["StartTime"] == start and d["EndTime"] == start + datetime.timedelta(minutes=5), d
    assert d["Parameters"] == {"lr": {"NumberValue": 0.1}, "depth": {"NumberValue": 6.0}}, d["Parameters"]
    assert d["InputArtifacts"]["train"] == {"MediaType": "text/csv", "Value": "s3://b/train.csv"}, d
    assert d["OutputArtifacts"]["model"]["Value"] == "s3://b/model.tar.gz", d
    assert d["Metrics"] == [], d["Metrics"]

    for trial_name in ["trial-a", "trial-b"]:
        out = sm.associate_trial_component(TrialComponentName="run-1", TrialName=trial_name)
        assert out == {"TrialComponentArn": tc, "TrialArn": ARN_PREFIX + f"experiment-trial/{trial_name}"} | {
            "ResponseMetadata": out["ResponseMetadata"]}, out
    sm.associate_trial_component(TrialComponentName="run-1", TrialName="trial-a")  # again: no error
    expect_error("ResourceNotFound", ["ghost"], sm.associate_trial_component,
                 TrialComponentName="ghost", TrialName="trial-a")

    # A trial component is an end of associations and a QueryLineage vertex.
    data = sm.create_artifact(Source={"SourceUri": "s3://b/train.csv"}, ArtifactType="DataSet")["ArtifactArn"]
    sm.add_association(SourceArn=data, DestinationArn=tc, AssociationType="ContributedTo")
    q = sm.query_lineage(StartArns=[data], Direction="Descendants", IncludeEdges=True)
    assert [(v["Arn"], v["LineageType"]) for v in q["Vertices"]] == [(data, "Artifact"), (tc, "TrialComponent")], q
    expect_error("ValidationException", ["DestinationArn", "trial"], sm.add_association,
                 SourceArn=data, DestinationArn=trial)

    expect_error("ValidationException", ["trials"], sm.delete_experiment, ExperimentName="churn-exp")
    expect_error("ValidationException", ["DisassociateTrialComponent"], sm.delete_trial, TrialName="trial-a")
    expect_error("ValidationException", ["DisassociateTrialComponent"], sm.delete_trial_component,
                 TrialComponentName="run-1")
    for trial_name in ["trial-a", "trial-b"]:
        sm.disassociate_trial_component(TrialComponentName="run-1", TrialName=trial_name)
    expect_error("ResourceNotFound", ["not in trial"], sm.disassociate_trial_component,
                 TrialComponentName="run-1", TrialName="trial-a")
    assert sm.delete_trial_component(TrialComponentName="run-1")["TrialComponentArn"] == tc
    # Its associations went with it.
    assert sm.list_associations(SourceArn=data)["AssociationSummaries"] == []
    for trial_name in ["trial-a", "trial-b"]:
        sm.delete_trial(TrialName=trial_name)
    assert sm.delete_experiment(ExperimentName="churn-exp")["ExperimentArn"] == arn
    expect_error("ResourceNotFound", ["churn-exp"], sm.describe_experiment, ExperimentName="churn-exp")
    sm.delete_artifact(ArtifactArn=data)


@check
def experiment_listings_filter_sort_and_page():
    sm.create_experiment(ExperimentName="list-exp")
    sm.create_experiment(ExperimentName="other-exp")
    for i in range(3):
        sm.create_trial(TrialName=f"list-trial-{i}", ExperimentName="list-exp")
    sm.create_trial(TrialName="other-trial", ExperimentName="other-exp")
    for i in range(12):
        sm.create_trial_component(TrialComponentName=f"list-run-{i:02d}")
        sm.associate_trial_component(TrialComponentName=f"list-run-{i:02d}", TrialName=f"list-trial-{i % 3}")
    sm.create_trial_component(TrialComponentName="loose-run")

    trials = all_pages("list_trials", "TrialSummaries", ExperimentName="list-exp", SortBy="Name",
                       SortOrder="Ascending", PaginationConfig={"PageSize": 2})
    assert [t["TrialName"] for t in trials] == ["list-trial-0", "list-trial-1", "list-trial-2"], trials
    runs = all_pages("list_trial_components", "TrialComponentSummaries", ExperimentName="list-exp",
                     SortBy="Name", SortOrder="Descending", PaginationConfig={"PageSize": 5})
    assert [r["TrialComponentName"] for r in runs] == [f"list-run-{i:02d}" for i in reversed(range(12))], runs
    in_trial = sm.list_trial_components(TrialName="list-trial-1", SortBy="Name", SortOrder="Ascending")
    assert [r["TrialComponentName"] for r in in_trial["TrialComponentSummaries"]] == [
        "list-run-01", "list-run-04", "list-run-07", "list-run-10"], in_trial
    holding = sm.list_trials(TrialComponentName="list-run-04")["TrialSummaries"]
    assert [t["TrialName"] for t in holding] == ["list-trial-1"], holding
    every = all_pages("list_experiments", "ExperimentSummaries", SortBy="Name", SortOrder="Ascending")
    names = [e["ExperimentName"] for e in every]
    assert "list-exp" in names and "other-exp" in names and names == sorted(names), names
    expect_error("ResourceNotFound", ["missing"], sm.list_trials, ExperimentName="missing")
    page = sm.list_trial_components(MaxResults=3, SortBy="CreationTime")
    assert len(page["TrialComponentSummaries"]) == 3 and "NextToken" in page, page
    # Search, as the SDK uses it to ask whether a run is in a trial.
    found = sm.search(Resource="ExperimentTrialComponent", SearchExpression={"Filters": [
        {"Name": "TrialComponentName", "Operator": "Equals", "Value": "list-run-04"},
        {"Name": "Parents.TrialName", "Operator": "Equals", "Value": "list-trial-1"}]})
    assert [r["TrialComponent"]["TrialComponentName"] for r in found["Results"]] == ["list-run-04"], found
    missed = sm.search(Resource="ExperimentTrialComponent", SearchExpression={"Filters": [
        {"Name": "TrialComponentName", "Operator": "Equals", "Value": "list-run-04"},
        {"Name": "Parents.TrialName", "Operator": "Equals", "Value": "list-trial-2"}]})
    assert missed["Results"] == [], missed
    experiments = sm.search(Resource="Experiment", SearchExpression={"Filters": [
        {"Name": "ExperimentName", "Operator": "Equals", "Value": "other-exp"}]})
    assert [r["Experiment"]["ExperimentName"] for r in experiments["Results"]] == ["other-exp"], experiments


@check
def experiment_limits_are_enforced_by_the_server():
    sm.create_experiment(ExperimentName="limits-exp")
    expect_error("ValidationException", ["ExperimentName"], sm.create_experiment, ExperimentName="bad_name")
    expect_error("ValidationException", ["DisplayName"], sm.create_experiment, ExperimentName="ok",
                 DisplayName="-x")
    expect_error("ValidationException", ["Status.PrimaryStatus", "Done"], sm.create_trial_component,
                 TrialComponentName="lim", Status={"PrimaryStatus": "Done"})
    expect_error("ValidationException", ["Parameters has 301"], sm.create_trial_component,
                 TrialComponentName="lim", Parameters={f"p{i}": {"NumberValue": i} for i in range(301)})
    expect_error("ValidationException", ["InputArtifacts has 61"], sm.create_trial_component,
                 TrialComponentName="lim",
                 InputArtifacts={f"a{i}": {"Value": "v"} for i in range(61)})
    expect_error("ValidationException", ["OutputArtifacts['m'].MediaType"], sm.create_trial_component,
                 TrialComponentName="lim", OutputArtifacts={"m": {"MediaType": "csv", "Value": "v"}})
    expect_error("ValidationException", ["Parameters['p']", "StringValue"], sm.create_trial_component,
                 TrialComponentName="lim", Parameters={"p": {"StringValue": "x" * 2501}})
    expect_error("ValidationException", ["Parameters['p']", "one of StringValue and NumberValue"],
                 sm.create_trial_component, TrialComponentName="lim", Parameters={"p": {}})
    expect_error("ValidationException", ["Tags"], sm.create_trial, TrialName="lim", ExperimentName="limits-exp",
                 Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    expect_error("ValidationException", ["EndTime", "before StartTime"], sm.create_trial_component,
                 TrialComponentName="lim", StartTime=start, EndTime=start - datetime.timedelta(seconds=1))
    sm.create_trial(TrialName="lim-trial", ExperimentName="limits-exp")
    expect_error("ValidationException", ["SortBy", "Size"], sm.list_experiments, SortBy="Size")
    expect_error("ResourceNotFound", ["ghost"], sm.update_trial_component, TrialComponentName="ghost",
                 DisplayName="x")
    sm.delete_trial(TrialName="lim-trial")
    sm.delete_experiment(ExperimentName="limits-exp")


@check
def batch_put_metrics_summarises_each_metric():
    """SageMaker Metrics' BatchPutMetrics (the `sagemaker-metrics` client) and the summaries
    DescribeTrialComponent returns."""
    metrics = boto3.client(
        "sagemaker-metrics", endpoint_url=ENDPOINT, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    sm.create_trial_component(TrialComponentName="metrics-run")
    t0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    values = [0.9, 0.7, 0.5, 0.6]
    out = metrics.batch_put_metrics(TrialComponentName="metrics-run", MetricData=[
        {"MetricName": "loss", "Timestamp": t0 + datetime.timedelta(seconds=i), "Step": i, "Value": v}
        for i, v in enumerate(values)
    ] + [{"MetricName": "auc", "Timestamp": t0, "Value": 0.8}])
    assert out.get("Errors", []) == [], out
    d = sm.describe_trial_component(TrialComponentName="metrics-run")
    by_name = {m["MetricName"]: m for m in d["Metrics"]}
    loss = by_name["loss"]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    assert (loss["Count"], loss["Min"], loss["Max"], loss["Last"]) == (4, 0.5, 0.9, 0.6), loss
    assert abs(loss["Avg"] - mean) < 1e-9 and abs(loss["StdDev"] - std) < 1e-9, loss
    assert loss["TimeStamp"] == t0 + datetime.timedelta(seconds=3), loss
    assert loss["SourceArn"] == ARN_PREFIX + "experiment-trial-component/metrics-run", loss
    assert by_name["auc"]["Count"] == 1 and by_name["auc"]["StdDev"] == 0, by_name
    try:
        metrics.batch_put_metrics(TrialComponentName="no-such-run", MetricData=[
            {"MetricName": "loss", "Timestamp": t0, "Value": 1.0}])
        raise AssertionError("a missing trial component was accepted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ResourceNotFound", e.response
    sm.delete_trial_component(TrialComponentName="metrics-run")


def seed():
    a = sm.create_artifact(Source={"SourceUri": "s3://keep/data"}, ArtifactType="DataSet")["ArtifactArn"]
    c = sm.create_context(ContextName="keep-context", Source={"SourceUri": "keep"}, ContextType="T")["ContextArn"]
    sm.add_association(SourceArn=a, DestinationArn=c, AssociationType="ContributedTo")
    sm.create_experiment(ExperimentName="keep-exp")
    sm.create_trial(TrialName="keep-trial", ExperimentName="keep-exp")
    sm.create_trial_component(TrialComponentName="keep-run", Parameters={"lr": {"NumberValue": 0.5}})
    sm.associate_trial_component(TrialComponentName="keep-run", TrialName="keep-trial")
    print(json.dumps({"artifact": a, "context": c, "runs": runs_of("keep-trial")}))


def runs_of(trial):
    return [[r["TrialComponentName"], sm.describe_trial_component(TrialComponentName=r["TrialComponentName"])[
        "Parameters"]] for r in sm.list_trial_components(TrialName=trial)["TrialComponentSummaries"]]


def verify():
    c = sm.describe_context(ContextName="keep-context")["ContextArn"]
    result = sm.query_lineage(StartArns=[c], Direction="Ascendants", IncludeEdges=True)
    print(json.dumps({
        "context": c,
        "vertices": sorted(v["Arn"] for v in result["Vertices"]),
        "edges": [[e["SourceArn"], e["DestinationArn"], e["AssociationType"]] for e in result["Edges"]],
        "runs": runs_of("keep-trial"),
    }))


def off():
    """With --lineage false every lineage operation is refused, naming the setting."""
    code, message = error_of(sm.list_artifacts)
    print(json.dumps({"code": code, "message": message}))


def main():
    if MODE == "off":
        return off()
    if MODE == "seed":
        return seed()
    if MODE == "verify":
        return verify()
    passed, failed = [], []
    for fn in CHECKS:
        try:
            fn()
            passed.append(fn.__name__)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            failed.append({"name": fn.__name__, "error": f"{e!r}\n{traceback.format_exc()}"})
    print(json.dumps({"passed": passed, "failed": failed}))


main()
