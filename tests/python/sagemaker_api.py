"""boto3 against Quiver's SageMaker-compatible HTTP API, unchanged but for endpoint_url.

    python sagemaker_api.py http://127.0.0.1:PORT

Runs every check below in order (later checks use the groups earlier ones create) and prints
{"passed": [names], "failed": [{"name", "error"}]} as JSON. Each check asserts what botocore
parsed: field names, types, error codes, HTTP statuses and messages.
"""

import datetime
import json
import sys
import time
import traceback

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = sys.argv[1]
SESSION = dict(
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
    config=Config(retries={"max_attempts": 1}),
)
sm = boto3.client("sagemaker", **SESSION)
rt = boto3.client("sagemaker-featurestore-runtime", **SESSION)

GROUP = "customers"
OTHER = "orders"
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def error_of(call, **kwargs):
    """The ClientError a call raises: (code, HTTP status, message)."""
    try:
        call(**kwargs)
    except ClientError as e:
        return (
            e.response["Error"]["Code"],
            e.response["ResponseMetadata"]["HTTPStatusCode"],
            e.response["Error"].get("Message", ""),
        )
    raise AssertionError(f"{call.__name__} succeeded; an error was expected")


def definitions():
    return [
        {"FeatureName": "id", "FeatureType": "String"},
        {"FeatureName": "ts", "FeatureType": "String"},
        {"FeatureName": "age", "FeatureType": "Integral"},
        {"FeatureName": "score", "FeatureType": "Fractional"},
        {"FeatureName": "name", "FeatureType": "String"},
        {"FeatureName": "tags", "FeatureType": "String", "CollectionType": "List"},
        {"FeatureName": "codes", "FeatureType": "Integral", "CollectionType": "Set"},
        {
            "FeatureName": "embedding",
            "FeatureType": "Fractional",
            "CollectionType": "Vector",
            "CollectionConfig": {"VectorConfig": {"Dimension": 3}},
        },
    ]


def iso(seconds_ago=0):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def record(identifier, ts, age="42", **extra):
    values = {"id": identifier, "ts": ts, "age": age, "score": "0.5", "name": "Ada"}
    values.update(extra)
    out = []
    for k, v in values.items():
        if isinstance(v, list):
            out.append({"FeatureName": k, "ValueAsStringList": v})
        else:
            out.append({"FeatureName": k, "ValueAsString": v})
    return out


def as_dict(record_list):
    return {
        v["FeatureName"]: v.get("ValueAsString", v.get("ValueAsStringList"))
        for v in record_list
    }


# --- control plane ---------------------------------------------------------------------------


@check
def create_feature_group():
    arn = sm.create_feature_group(
        FeatureGroupName=GROUP,
        RecordIdentifierFeatureName="id",
        EventTimeFeatureName="ts",
        FeatureDefinitions=definitions(),
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": ""}, "DisableGlueTableCreation": True},
        Description="customer features",
        Tags=[{"Key": "team", "Value": "risk"}],
    )["FeatureGroupArn"]
    assert arn.endswith(":feature-group/customers"), arn
    assert arn.startswith("arn:aws:sagemaker:us-east-1:"), arn
    sm.create_feature_group(
        FeatureGroupName=OTHER,
        RecordIdentifierFeatureName="order_id",
        EventTimeFeatureName="event_time",
        FeatureDefinitions=[
            {"FeatureName": "order_id", "FeatureType": "Integral"},
            {"FeatureName": "event_time", "FeatureType": "Fractional"},
            {"FeatureName": "amount", "FeatureType": "Fractional"},
        ],
        OnlineStoreConfig={
            "EnableOnlineStore": True,
            "TtlDuration": {"Unit": "Hours", "Value": 1},
        },
    )


@check
def create_existing_group_is_resource_in_use():
    code, status, message = error_of(
        sm.create_feature_group,
        FeatureGroupName=GROUP,
        RecordIdentifierFeatureName="id",
        EventTimeFeatureName="ts",
        FeatureDefinitions=definitions(),
        OnlineStoreConfig={"EnableOnlineStore": True},
    )
    assert (code, status) == ("ResourceInUse", 400), (code, status, message)
    assert GROUP in message, message


@check
def create_with_bad_definitions_is_validation_exception():
    code, status, message = error_of(
        sm.create_feature_group,
        FeatureGroupName="bad",
        RecordIdentifierFeatureName="id",
        EventTimeFeatureName="ts",
        FeatureDefinitions=[
            {"FeatureName": "id", "FeatureType": "String"},
            {"FeatureName": "ts", "FeatureType": "Timestamp"},
        ],
        OnlineStoreConfig={"EnableOnlineStore": True},
    )
    assert (code, status) == ("ValidationException", 400), (code, status, message)
    assert "FeatureDefinitions[1].FeatureType 'Timestamp'" in message, message


@check
def describe_feature_group():
    d = sm.describe_feature_group(FeatureGroupName=GROUP)
    assert d["FeatureGroupName"] == GROUP
    assert d["RecordIdentifierFeatureName"] == "id"
    assert d["EventTimeFeatureName"] == "ts"
    assert d["FeatureDefinitions"] == definitions(), d["FeatureDefinitions"]
    assert isinstance(d["CreationTime"], datetime.datetime), d["CreationTime"]
    assert abs(d["CreationTime"].timestamp() - time.time()) < 300, d["CreationTime"]
    assert d["FeatureGroupStatus"] == "Created"
    assert d["OnlineStoreConfig"]["EnableOnlineStore"] is True
    assert d["OfflineStoreStatus"]["Status"] == "Active", d.get("OfflineStoreStatus")
    assert d["OfflineStoreConfig"]["DisableGlueTableCreation"] is True
    assert "/offline-store/" in d["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
    assert d["Description"] == "customer features"
    assert d["NextToken"] == ""
    o = sm.describe_feature_group(FeatureGroupName=OTHER)
    assert o["OnlineStoreConfig"]["TtlDuration"] == {"Unit": "Hours", "Value": 1}
    assert "OfflineStoreConfig" not in o


@check
def describe_by_arn_and_missing_group():
    arn = sm.describe_feature_group(FeatureGroupName=GROUP)["FeatureGroupArn"]
    assert sm.describe_feature_group(FeatureGroupName=arn)["FeatureGroupName"] == GROUP
    code, status, message = error_of(sm.describe_feature_group, FeatureGroupName="nope")
    assert (code, status) == ("ResourceNotFound", 400), (code, status)
    assert "'nope'" in message, message


@check
def list_feature_groups_filters_sorts_and_paginates():
    names = [
        s["FeatureGroupName"]
        for s in sm.list_feature_groups(SortBy="Name", SortOrder="Ascending")["FeatureGroupSummaries"]
    ]
    assert names == [GROUP, OTHER], names
    first = sm.list_feature_groups(SortBy="Name", SortOrder="Ascending", MaxResults=1)
    assert [s["FeatureGroupName"] for s in first["FeatureGroupSummaries"]] == [GROUP]
    second = sm.list_feature_groups(
        SortBy="Name", SortOrder="Ascending", MaxResults=1, NextToken=first["NextToken"]
    )
    assert [s["FeatureGroupName"] for s in second["FeatureGroupSummaries"]] == [OTHER]
    assert "NextToken" not in second or not second["NextToken"]
    summary = first["FeatureGroupSummaries"][0]
    assert isinstance(summary["CreationTime"], datetime.datetime)
    assert summary["FeatureGroupStatus"] == "Created"
    contains = sm.list_feature_groups(NameContains="ord")["FeatureGroupSummaries"]
    assert [s["FeatureGroupName"] for s in contains] == [OTHER]
    paged = [
        s["FeatureGroupName"]
        for page in sm.get_paginator("list_feature_groups").paginate(
            SortBy="Name", SortOrder="Descending", PaginationConfig={"PageSize": 1}
        )
        for s in page["FeatureGroupSummaries"]
    ]
    assert paged == [OTHER, GROUP], paged
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert sm.list_feature_groups(CreationTimeAfter=future)["FeatureGroupSummaries"] == []
    code, status, message = error_of(sm.list_feature_groups, MaxResults=101)
    assert (code, status) == ("ValidationException", 400), (code, status, message)
    assert "MaxResults" in message, message


@check
def update_feature_group_adds_features_and_ttl():
    sm.update_feature_group(
        FeatureGroupName=GROUP,
        FeatureAdditions=[{"FeatureName": "city", "FeatureType": "String"}],
        OnlineStoreConfig={"TtlDuration": {"Unit": "Days", "Value": 30}},
    )
    d = sm.describe_feature_group(FeatureGroupName=GROUP)
    assert d["FeatureDefinitions"][-1] == {"FeatureName": "city", "FeatureType": "String"}
    assert d["OnlineStoreConfig"]["TtlDuration"] == {"Unit": "Days", "Value": 30}
    code, _, message = error_of(
        sm.update_feature_group,
        FeatureGroupName=GROUP,
        FeatureAdditions=[{"FeatureName": "city", "FeatureType": "String"}],
    )
    assert code == "ValidationException", (code, message)
    assert "city" in message, message
    code, status, message = error_of(
        sm.update_feature_group,
        FeatureGroupName=GROUP,
        FeatureAdditions=[{"FeatureName": f"f{i}", "FeatureType": "String"} for i in range(101)],
    )
    assert (code, status) == ("ResourceLimitExceeded", 400), (code, status, message)
    assert "FeatureAdditions has 101 features" in message, message


@check
def feature_metadata():
    sm.update_feature_metadata(
        FeatureGroupName=GROUP,
        FeatureName="age",
        Description="age in years",
        ParameterAdditions=[{"Key": "owner", "Value": "risk"}, {"Key": "pii", "Value": "no"}],
    )
    sm.update_feature_metadata(FeatureGroupName=GROUP, FeatureName="age", ParameterRemovals=["pii"])
    m = sm.describe_feature_metadata(FeatureGroupName=GROUP, FeatureName="age")
    assert m["FeatureName"] == "age" and m["FeatureType"] == "Integral", m
    assert m["Description"] == "age in years", m
    assert m["Parameters"] == [{"Key": "owner", "Value": "risk"}], m["Parameters"]
    assert isinstance(m["LastModifiedTime"], datetime.datetime)
    code, status, _ = error_of(sm.describe_feature_metadata, FeatureGroupName=GROUP, FeatureName="nope")
    assert (code, status) == ("ResourceNotFound", 400), (code, status)


@check
def search_feature_groups():
    r = sm.search(
        Resource="FeatureGroup",
        SearchExpression={"Filters": [{"Name": "FeatureGroupName", "Operator": "Contains", "Value": "ust"}]},
    )
    assert [x["FeatureGroup"]["FeatureGroupName"] for x in r["Results"]] == [GROUP], r["Results"]
    assert r["TotalHits"]["Value"] == 1
    nested = sm.search(
        Resource="FeatureGroup",
        SearchExpression={
            "NestedFilters": [
                {
                    "NestedPropertyName": "FeatureDefinitions",
                    "Filters": [
                        {"Name": "FeatureDefinitions.FeatureName", "Operator": "Equals", "Value": "amount"},
                        {"Name": "FeatureDefinitions.FeatureType", "Operator": "Equals", "Value": "Fractional"},
                    ],
                }
            ]
        },
    )
    assert [x["FeatureGroup"]["FeatureGroupName"] for x in nested["Results"]] == [OTHER]
    # Either group, one per page, by name.
    either_query = dict(
        Resource="FeatureGroup",
        SearchExpression={
            "Operator": "Or",
            "SubExpressions": [
                {"Filters": [{"Name": "FeatureGroupName", "Value": GROUP}]},
                {"Filters": [{"Name": "OnlineStoreConfig.TtlDuration.Unit", "Value": "Hours"}]},
            ],
        },
        SortBy="FeatureGroupName",
        SortOrder="Ascending",
        MaxResults=1,
    )
    either = sm.search(**either_query)
    assert [x["FeatureGroup"]["FeatureGroupName"] for x in either["Results"]] == [GROUP]
    rest = sm.search(**either_query, NextToken=either["NextToken"])
    assert [x["FeatureGroup"]["FeatureGroupName"] for x in rest["Results"]] == [OTHER]
    assert "NextToken" not in rest
    tagged = sm.search(
        Resource="FeatureGroup",
        SearchExpression={"Filters": [{"Name": "Tags.team", "Value": "risk"}]},
    )
    assert [x["FeatureGroup"]["FeatureGroupName"] for x in tagged["Results"]] == [GROUP]
    assert isinstance(tagged["Results"][0]["FeatureGroup"]["CreationTime"], datetime.datetime)


@check
def search_feature_metadata():
    r = sm.search(
        Resource="FeatureMetadata",
        SearchExpression={
            "Filters": [
                {"Name": "FeatureGroupName", "Value": GROUP},
                {"Name": "Parameters.owner", "Value": "risk"},
            ]
        },
    )
    assert [x["FeatureMetadata"]["FeatureName"] for x in r["Results"]] == ["age"], r["Results"]
    strings = sm.search(
        Resource="FeatureMetadata",
        SearchExpression={"Filters": [{"Name": "FeatureType", "Value": "String"}]},
        SortBy="FeatureName",
        SortOrder="Ascending",
        MaxResults=100,
    )
    names = [x["FeatureMetadata"]["FeatureName"] for x in strings["Results"]]
    assert names == ["city", "id", "name", "tags", "ts"], names
    code, status, message = error_of(sm.search, Resource="TrainingJob")
    assert (code, status) == ("ValidationException", 400), (code, status)
    assert "FeatureGroup, FeatureMetadata, Experiment" in message, message
    code, _, message = error_of(
        sm.search,
        Resource="FeatureGroup",
        SearchExpression={"Filters": [{"Name": "FeatureGroupName", "Operator": "Like", "Value": "x"}]},
    )
    assert code == "ValidationException" and "Operator 'Like'" in message, message


@check
def unsupported_operation_is_a_clear_error():
    code, status, message = error_of(sm.list_models)
    assert (code, status) == ("ValidationException", 400), (code, status)
    assert "ListModels" in message and "not supported" in message, message


# --- runtime ---------------------------------------------------------------------------------


@check
def put_and_get_record_with_every_type():
    rt.put_record(
        FeatureGroupName=GROUP,
        Record=record(
            "c1",
            iso(60),
            tags=["a", "b"],
            codes=["7", "9"],
            embedding=["0.25", "-1", "3e2"],
        ),
    )
    got = rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="c1")
    values = as_dict(got["Record"])
    assert values["id"] == "c1" and values["age"] == "42", values
    assert values["score"] == "0.5" and values["name"] == "Ada", values
    assert values["tags"] == ["a", "b"] and values["codes"] == ["7", "9"], values
    assert [float(x) for x in values["embedding"]] == [0.25, -1.0, 300.0], values
    assert "ExpiresAt" not in got
    some = rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="c1", FeatureNames=["age", "name"])
    assert as_dict(some["Record"]) == {"age": "42", "name": "Ada"}, some["Record"]


@check
def get_missing_record_returns_no_record():
    got = rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="nobody")
    assert "Record" not in got, got
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200


@check
def runtime_errors_name_the_feature_type_and_value():
    code, status, message = error_of(
        rt.put_record, FeatureGroupName=GROUP, Record=record("c2", iso(), age="12.5")
    )
    assert (code, status) == ("ValidationError", 400), (code, status, message)
    assert "feature 'age' is Integral; '12.5' is not an integer" in message, message
    code, _, message = error_of(
        rt.put_record, FeatureGroupName=GROUP, Record=record("c2", iso(), score="abc")
    )
    assert "feature 'score' is Fractional; 'abc' is not a number" in message, message
    code, _, message = error_of(
        rt.put_record, FeatureGroupName=GROUP, Record=record("c2", iso(), tags="a")
    )
    assert "feature 'tags' is a List of String" in message and "ValueAsStringList" in message, message
    code, _, message = error_of(
        rt.put_record, FeatureGroupName=GROUP, Record=record("c2", iso(), codes=["1", "1"])
    )
    assert "element '1' appears more than once" in message, message
    code, _, message = error_of(
        rt.put_record, FeatureGroupName=GROUP, Record=record("c2", iso(), embedding=["1", "2"])
    )
    assert "dimension 3" in message, message
    code, _, message = error_of(
        rt.put_record, FeatureGroupName=GROUP, Record=record("c2", iso(), nope="1")
    )
    assert code == "ValidationError" and "'nope' is not a feature" in message, message
    code, status, message = error_of(
        rt.put_record, FeatureGroupName="missing", Record=record("c2", iso())
    )
    assert (code, status) == ("ResourceNotFound", 404), (code, status, message)
    code, status, message = error_of(
        rt.get_record, FeatureGroupName=GROUP, RecordIdentifierValueAsString="c1", FeatureNames=["nope"]
    )
    assert (code, status) == ("ValidationError", 400), (code, status, message)
    assert "nope" in message, message
    assert rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="c2").get("Record") is None


@check
def names_may_be_arns():
    arn = sm.describe_feature_group(FeatureGroupName=GROUP)["FeatureGroupArn"]
    rt.put_record(FeatureGroupName=arn, Record=record("c3", iso(30), age="33"))
    got = rt.get_record(FeatureGroupName=arn, RecordIdentifierValueAsString="c3")
    assert as_dict(got["Record"])["age"] == "33"


@check
def ttl_and_expires_at():
    now = time.time()
    rt.put_record(
        FeatureGroupName=OTHER,
        Record=[
            {"FeatureName": "order_id", "ValueAsString": "1"},
            {"FeatureName": "event_time", "ValueAsString": str(now)},
            {"FeatureName": "amount", "ValueAsString": "9.5"},
        ],
    )
    got = rt.get_record(FeatureGroupName=OTHER, RecordIdentifierValueAsString="1", ExpirationTimeResponse="Enabled")
    expires = datetime.datetime.fromisoformat(got["ExpiresAt"].replace("Z", "+00:00"))
    assert abs(expires.timestamp() - (now + 3600)) < 5, (got["ExpiresAt"], now)
    # A record whose TTL has already run out is never returned.
    rt.put_record(
        FeatureGroupName=OTHER,
        Record=[
            {"FeatureName": "order_id", "ValueAsString": "2"},
            {"FeatureName": "event_time", "ValueAsString": str(now - 120)},
            {"FeatureName": "amount", "ValueAsString": "1"},
        ],
        TtlDuration={"Unit": "Seconds", "Value": 60},
    )
    assert "Record" not in rt.get_record(FeatureGroupName=OTHER, RecordIdentifierValueAsString="2")
    # Integral identifiers are canonical: "007" names record 7.
    rt.put_record(
        FeatureGroupName=OTHER,
        Record=[
            {"FeatureName": "order_id", "ValueAsString": "7"},
            {"FeatureName": "event_time", "ValueAsString": str(now)},
        ],
    )
    got = rt.get_record(FeatureGroupName=OTHER, RecordIdentifierValueAsString="007")
    assert as_dict(got["Record"])["order_id"] == "7", got
    code, _, message = error_of(
        rt.put_record,
        FeatureGroupName=OTHER,
        Record=[{"FeatureName": "order_id", "ValueAsString": "3"}, {"FeatureName": "event_time", "ValueAsString": "1"}],
        TtlDuration={"Unit": "Fortnights", "Value": 1},
    )
    assert code == "ValidationError" and "TtlDuration.Unit 'Fortnights'" in message, message


@check
def batch_get_record_with_partial_errors():
    r = rt.batch_get_record(
        Identifiers=[
            {"FeatureGroupName": GROUP, "RecordIdentifiersValueAsString": ["c1", "c3", "nobody"]},
            {"FeatureGroupName": OTHER, "RecordIdentifiersValueAsString": ["1"], "FeatureNames": ["amount"]},
            {"FeatureGroupName": "missing", "RecordIdentifiersValueAsString": ["x"]},
        ],
        ExpirationTimeResponse="Enabled",
    )
    found = {(x["FeatureGroupName"], x["RecordIdentifierValueAsString"]) for x in r["Records"]}
    assert found == {(GROUP, "c1"), (GROUP, "c3"), (OTHER, "1")}, found
    other = [x for x in r["Records"] if x["FeatureGroupName"] == OTHER][0]
    assert as_dict(other["Record"]) == {"amount": "9.5"}, other
    assert "ExpiresAt" in other, other
    assert len(r["Errors"]) == 1, r["Errors"]
    err = r["Errors"][0]
    assert err["FeatureGroupName"] == "missing" and err["RecordIdentifierValueAsString"] == "x"
    assert err["ErrorCode"] == "ResourceNotFound", err
    assert r["UnprocessedIdentifiers"] == []


@check
def batch_write_record_reports_each_failed_entry():
    r = rt.batch_write_record(
        Entries=[
            {"FeatureGroupName": GROUP, "Record": record("b1", iso(10))},
            {"FeatureGroupName": GROUP, "Record": record("b2", iso(10), age="x")},
            {"FeatureGroupName": OTHER, "Record": [
                {"FeatureName": "order_id", "ValueAsString": "50"},
                {"FeatureName": "event_time", "ValueAsString": str(time.time())},
            ]},
            {"FeatureGroupName": "missing", "Record": record("b3", iso(10))},
        ]
    )
    assert r["UnprocessedEntries"] == []
    errors = {e["Entry"]["FeatureGroupName"] + ":" + e["ErrorCode"]: e for e in r["Errors"]}
    assert set(errors) == {f"{GROUP}:ValidationError", "missing:ResourceNotFound"}, r["Errors"]
    assert "'x' is not an integer" in errors[f"{GROUP}:ValidationError"]["ErrorMessage"]
    assert as_dict(errors[f"{GROUP}:ValidationError"]["Entry"]["Record"])["id"] == "b2"
    assert "Record" in rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="b1")
    assert "Record" in rt.get_record(FeatureGroupName=OTHER, RecordIdentifierValueAsString="50")
    assert "Record" not in rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="b2")


@check
def delete_record_soft_and_hard():
    rt.put_record(FeatureGroupName=GROUP, Record=record("d1", iso(100)))
    rt.put_record(FeatureGroupName=GROUP, Record=record("d2", iso(100)))
    rt.delete_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="d1", EventTime=iso(50))
    assert "Record" not in rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="d1")
    code, status, message = error_of(
        rt.delete_record,
        FeatureGroupName=GROUP,
        RecordIdentifierValueAsString="d2",
        EventTime=iso(200),
        DeletionMode="HardDelete",
    )
    assert (code, status) == ("ValidationError", 400), (code, status, message)
    assert "not newer" in message, message
    rt.delete_record(
        FeatureGroupName=GROUP,
        RecordIdentifierValueAsString="d2",
        EventTime=iso(50),
        DeletionMode="HardDelete",
        TargetStores=["OnlineStore", "OfflineStore"],
    )
    assert "Record" not in rt.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="d2")
    code, _, message = error_of(
        rt.delete_record, FeatureGroupName=GROUP, RecordIdentifierValueAsString="d2", EventTime="yesterday"
    )
    assert code == "ValidationError" and "EventTime 'yesterday'" in message, message


@check
def list_records_paginates_and_can_include_soft_deleted():
    seen, token = [], None
    while True:
        kwargs = {"FeatureGroupName": GROUP, "MaxResults": 2}
        if token:
            kwargs["NextToken"] = token
        page = rt.list_records(**kwargs)
        assert len(page["RecordIdentifiers"]) <= 2
        seen += page["RecordIdentifiers"]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == ["b1", "c1", "c3"], seen
    with_deleted = rt.list_records(FeatureGroupName=GROUP, IncludeSoftDeletedRecords=True)
    assert with_deleted["RecordIdentifiers"] == ["b1", "c1", "c3", "d1"], with_deleted
    code, _, message = error_of(rt.list_records, FeatureGroupName=GROUP, MaxResults=500)
    assert code == "ValidationError" and "MaxResults" in message, message


@check
def delete_feature_group():
    sm.delete_feature_group(FeatureGroupName=OTHER)
    code, _, _ = error_of(sm.describe_feature_group, FeatureGroupName=OTHER)
    assert code == "ResourceNotFound"
    code, status, _ = error_of(rt.get_record, FeatureGroupName=OTHER, RecordIdentifierValueAsString="1")
    assert (code, status) == ("ResourceNotFound", 404), (code, status)
    code, _, _ = error_of(sm.delete_feature_group, FeatureGroupName=OTHER)
    assert code == "ResourceNotFound"


def main():
    passed, failed = [], []
    for fn in CHECKS:
        try:
            fn()
            passed.append(fn.__name__)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            failed.append({"name": fn.__name__, "error": f"{e!r}\n{traceback.format_exc()}"})
    print(json.dumps({"passed": passed, "failed": failed}))


main()
