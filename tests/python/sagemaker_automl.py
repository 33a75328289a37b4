"""boto3's AutoML (Autopilot V2) operations against Quiver's SageMaker-compatible API.

    python sagemaker_automl.py http://127.0.0.1:PORT [off]

Creates a feature group of customers, writes 400 of them, and builds a churn model from the
group with CreateAutoMLJobV2; follows it with DescribeAutoMLJobV2 to the end; reads its
candidates and the job list; stops a second job; and checks the errors. Prints
{"passed": [...], "failed": [...]} as JSON.
"""

import json
import sys
import time
import traceback

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = sys.argv[1]
session = dict(endpoint_url=ENDPOINT, region_name="us-east-1", aws_access_key_id="testing",
               aws_secret_access_key="testing", config=Config(retries={"max_attempts": 1}))
sm = boto3.client("sagemaker", **session)
rt = boto3.client("sagemaker-featurestore-runtime", **session)
CHECKS = []
GROUP = "automl_customers"


def check(fn):
    CHECKS.append(fn)
    return fn


def error_of(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError(f"{call.__name__} succeeded; an error was expected")


def setup():
    sm.create_feature_group(
        FeatureGroupName=GROUP, RecordIdentifierFeatureName="customer_id", EventTimeFeatureName="ts",
        FeatureDefinitions=[{"FeatureName": n, "FeatureType": t} for n, t in [
            ("customer_id", "String"), ("ts", "Fractional"), ("tenure", "Integral"),
            ("spend", "Fractional"), ("plan", "String"), ("churned", "String")]],
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": ""}, "DisableGlueTableCreation": True})
    for i in range(400):
        tenure, spend, plan = (i * 7) % 60, float((i * 13) % 200), ["basic", "plus", "pro"][i % 3]
        churned = "yes" if (tenure < 20 and plan == "basic") or spend < 30 else "no"
        rt.put_record(FeatureGroupName=GROUP, Record=[
            {"FeatureName": "customer_id", "ValueAsString": f"c{i}"},
            {"FeatureName": "ts", "ValueAsString": "1700000000"},
            {"FeatureName": "tenure", "ValueAsString": str(tenure)},
            {"FeatureName": "spend", "ValueAsString": str(spend)},
            {"FeatureName": "plan", "ValueAsString": plan},
            {"FeatureName": "churned", "ValueAsString": churned}])
    return sm.describe_feature_group(FeatureGroupName=GROUP)["FeatureGroupArn"]


def create(name, uri, target="churned", **criteria):
    return sm.create_auto_ml_job_v2(
        AutoMLJobName=name,
        AutoMLJobInputDataConfig=[{"ChannelType": "training", "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}],
        OutputDataConfig={"S3OutputPath": "file:///tmp/quiver-automl-out"},
        AutoMLProblemTypeConfig={"TabularJobConfig": {
            "TargetAttributeName": target,
            "CompletionCriteria": {"MaxAutoMLJobRuntimeInSeconds": 120, **criteria}}},
        RoleArn="arn:aws:iam::000000000000:role/quiver")


def wait(name, timeout=180):
    started = time.time()
    while True:
        job = sm.describe_auto_ml_job_v2(AutoMLJobName=name)
        if job["AutoMLJobStatus"] not in ("InProgress", "Stopping") or time.time() - started > timeout:
            return job
        time.sleep(0.2)


if len(sys.argv) > 2 and sys.argv[2] == "off":
    code, message = error_of(sm.list_auto_ml_jobs)
    print(json.dumps({"code": code, "message": message}))
    sys.exit(0)

ARN = setup()


@check
def a_model_is_built_from_a_feature_group():
    arn = create("churn-1", ARN, MaxCandidates=3)["AutoMLJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:automl-job/churn-1", arn
    job = wait("churn-1")
    assert job["AutoMLJobStatus"] == "Completed", job
    assert job["AutoMLJobSecondaryStatus"] == "Completed", job
    best = job["BestCandidate"]
    metric = best["FinalAutoMLJobObjectiveMetric"]
    assert metric["MetricName"] == "F1" and metric["Type"] == "Maximize" and metric["Value"] > 0.8, best
    resolved = job["ResolvedAttributes"]["AutoMLProblemTypeResolvedAttributes"]["TabularResolvedAttributes"]
    assert resolved["ProblemType"] == "BinaryClassification", job["ResolvedAttributes"]
    assert job["AutoMLProblemTypeConfig"]["TabularJobConfig"]["TargetAttributeName"] == "churned"
    assert job["OutputDataConfig"]["S3OutputPath"] == "file:///tmp/quiver-automl-out"
    assert job["EndTime"] >= job["CreationTime"]
    candidates = sm.list_candidates_for_auto_ml_job(AutoMLJobName="churn-1")["Candidates"]
    assert len(candidates) == 4, [c["CandidateName"] for c in candidates]  # three and the ensemble
    values = [c["FinalAutoMLJobObjectiveMetric"]["Value"] for c in candidates if "FinalAutoMLJobObjectiveMetric" in c]
    assert values == sorted(values, reverse=True), values
    names = {m["MetricName"] for m in candidates[0]["CandidateProperties"]["CandidateMetrics"]}
    assert {"F1", "AUC", "Accuracy", "LogLoss"} <= names, names
    one = sm.list_candidates_for_auto_ml_job(AutoMLJobName="churn-1", MaxResults=1)
    assert len(one["Candidates"]) == 1 and "NextToken" in one, one
    listed = sm.list_auto_ml_jobs(NameContains="churn")["AutoMLJobSummaries"]
    assert [j["AutoMLJobName"] for j in listed] == ["churn-1"], listed


@check
def bad_requests_and_bad_data_are_refused_by_name():
    code, message = error_of(create, name="churn-1", uri=ARN)
    assert code == "ResourceInUse", (code, message)
    code, message = error_of(create, name="bad_name!", uri=ARN)
    assert code == "ValidationException" and "AutoMLJobName" in message, message
    code, message = error_of(create, name="nowhere", uri="s3://elsewhere/data")
    assert code == "ValidationException" and "s3://elsewhere/data" in message, message
    sm.create_feature_group(
        FeatureGroupName="online_only", RecordIdentifierFeatureName="id", EventTimeFeatureName="ts",
        FeatureDefinitions=[{"FeatureName": "id", "FeatureType": "String"}, {"FeatureName": "ts", "FeatureType": "Fractional"}],
        OnlineStoreConfig={"EnableOnlineStore": True})
    online_only = sm.describe_feature_group(FeatureGroupName="online_only")["FeatureGroupArn"]
    rt.put_record(FeatureGroupName="online_only", Record=[
        {"FeatureName": "id", "ValueAsString": "a"}, {"FeatureName": "ts", "ValueAsString": "1"}])
    create("online-only", online_only)  # read from the online store: the target is not there
    job = wait("online-only")
    assert job["AutoMLJobStatus"] == "Failed" and "'churned'" in job["FailureReason"], job
    create("no-target", ARN, target="nope")
    job = wait("no-target")
    assert job["AutoMLJobStatus"] == "Failed" and "'nope'" in job["FailureReason"], job
    code, _ = error_of(sm.describe_auto_ml_job_v2, AutoMLJobName="ghost")
    assert code == "ResourceNotFound", code


@check
def a_job_can_be_stopped():
    create("long-one", ARN, MaxAutoMLJobRuntimeInSeconds=3600)
    sm.stop_auto_ml_job(AutoMLJobName="long-one")
    job = wait("long-one")
    assert job["AutoMLJobStatus"] == "Stopped", job
    stopped = sm.list_auto_ml_jobs(StatusEquals="Stopped")["AutoMLJobSummaries"]
    assert [j["AutoMLJobName"] for j in stopped] == ["long-one"], stopped


passed, failed = [], []
for fn in CHECKS:
    try:
        fn()
        passed.append(fn.__name__)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed.append({"name": fn.__name__, "error": f"{e!r}\n{traceback.format_exc()}"})
print(json.dumps({"passed": passed, "failed": failed}))
