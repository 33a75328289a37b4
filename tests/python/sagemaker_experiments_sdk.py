"""The SageMaker Python SDK's experiments (`Run`, `load_run`, `list_runs`, `Experiment`)
against Quiver.

    python sagemaker_experiments_sdk.py http://127.0.0.1:PORT

A run logs parameters, metrics (through SageMaker Metrics' BatchPutMetrics) and artifacts
inside `with Run(...)`; it is loaded again and listed; then the experiment is deleted with all
its trials and runs, as `Experiment._delete_all` does it. Prints what it observed as JSON.
"""

import json
import os
import sys

ENDPOINT = sys.argv[1]
RESULT_OUT, sys.stdout = sys.stdout, sys.stderr
os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = ENDPOINT
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
CONFIG = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"quiver-sagemaker-config-{os.getpid()}.yaml")
with open(CONFIG, "w") as f:
    f.write("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = CONFIG

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from sagemaker.experiments.experiment import Experiment  # noqa: E402
from sagemaker.experiments.run import Run, list_runs, load_run  # noqa: E402
from sagemaker.session import Session  # noqa: E402

boto_session = boto3.Session(region_name="us-east-1")
sm = boto_session.client("sagemaker")
session = Session(
    boto_session=boto_session,
    sagemaker_client=sm,
    sagemaker_metrics_client=boto_session.client("sagemaker-metrics", endpoint_url=ENDPOINT),
)
seen = {}

with Run(experiment_name="sdk-exp", run_name="run-1", sagemaker_session=session) as run:
    run.log_parameters({"lr": 0.1, "algo": "gbm"})
    run.log_parameter("depth", 6)
    for step, loss in enumerate([0.9, 0.6, 0.3]):
        run.log_metric(name="loss", value=loss, step=step)
    run.log_artifact(name="train", value="s3://bucket/train.csv", media_type="text/csv", is_output=False)
    run.log_artifact(name="model", value="s3://bucket/model.tar.gz", is_output=True)
    seen["inside"] = sm.describe_trial_component(TrialComponentName=run._trial_component.trial_component_name)[
        "Status"]["PrimaryStatus"]

# A second run in the same experiment, which fails.
try:
    with Run(experiment_name="sdk-exp", run_name="run-2", sagemaker_session=session) as run:
        run.log_parameter("lr", 0.5)
        raise ValueError("diverged")
except ValueError:
    pass

tc = sm.describe_trial_component(TrialComponentName="sdk-exp-run-1")
loss = next(m for m in tc["Metrics"] if m["MetricName"] == "loss")
seen["run"] = {
    "status": tc["Status"]["PrimaryStatus"],
    "has_times": "StartTime" in tc and "EndTime" in tc,
    "parameters": tc["Parameters"],
    "inputs": tc["InputArtifacts"],
    "outputs": tc["OutputArtifacts"],
    "loss": [loss["Count"], loss["Min"], loss["Max"], loss["Last"]],
}
failed = sm.describe_trial_component(TrialComponentName="sdk-exp-run-2")["Status"]
seen["failed"] = [failed["PrimaryStatus"], failed.get("Message")]

with load_run(experiment_name="sdk-exp", run_name="run-1", sagemaker_session=session) as loaded:
    seen["loaded"] = [loaded.run_name, loaded.experiment_name, loaded._trial_component.parameters.get("depth")]
    loaded.log_parameter("epochs", 10)
seen["after_load"] = sorted(sm.describe_trial_component(TrialComponentName="sdk-exp-run-1")["Parameters"])

seen["listed"] = sorted(r.run_name for r in list_runs(experiment_name="sdk-exp", sagemaker_session=session))
trials = sm.list_trials(ExperimentName="sdk-exp")["TrialSummaries"]
seen["trials"] = [t["TrialName"] for t in trials]

Experiment.load(experiment_name="sdk-exp", sagemaker_session=session)._delete_all(action="--force")
try:
    sm.describe_experiment(ExperimentName="sdk-exp")
    seen["after_delete"] = "still there"
except ClientError as e:
    seen["after_delete"] = e.response["Error"]["Code"]
seen["runs_left"] = len(sm.list_trial_components()["TrialComponentSummaries"])

print(json.dumps(seen), file=RESULT_OUT)
