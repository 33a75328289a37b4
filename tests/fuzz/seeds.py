"""Writes the seed inputs of each fuzz target into corpus/<target>/seed-*: real documents (the
docs' recipes, policies, configs; boto3's request bodies) and hand-built binary records, so
fuzzing starts from what users send. libFuzzer adds what it finds beside them.

    python3 tests/fuzz/seeds.py      # run by bench/fuzz.sh when a corpus is empty
"""
import json
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# --- record_codec: format 1 records (codec.rs) ------------------------------------------------
def record(flags, event_ms, expires_ms, values):
    out = struct.pack("<BBqqI", 1, flags, event_ms, expires_ms, len(values))
    for ordinal, tag, payload in values:
        out += struct.pack("<HB", ordinal, tag) + payload
    return out


def s(text):
    b = text.encode()
    return struct.pack("<I", len(b)) + b


write("record_codec", "scalars", record(0, 1_700_000_000_000, 0, [
    (0, 3, s("c1")), (1, 2, struct.pack("<d", 1.7e9)), (2, 1, struct.pack("<q", -42))]))
write("record_codec", "lists", record(2, 5, 99, [
    (0, 4, struct.pack("<I", 2) + struct.pack("<qq", 1, 2)),
    (1, 5, struct.pack("<I", 1) + struct.pack("<d", 0.5)),
    (2, 6, struct.pack("<I", 2) + s("a") + s("bé"))]))
write("record_codec", "deleted", record(1, 7, 0, []))
write("record_codec", "sealed-header", struct.pack("<BBqq", 2, 0, 1, 0) + b"\x00" * 40)


# --- grpc_put_record: PutRecordRequest protobuf bytes ------------------------------------------
def varint(n):
    out = b""
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(number, wire, payload):
    key = varint(number << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def feature(name, number, wire, payload):
    return field(1, 2, name.encode()) + field(number, wire, payload)


put = field(1, 2, b"customers")
# FeatureValue (featurestore.proto): integral 2, fractional 3, string_value 4, integral_list 5,
# fractional_list 6, string_list 7.
put += field(2, 2, feature("customer_id", 4, 2, b"c1"))
put += field(2, 2, feature("event_time", 3, 1, struct.pack("<d", 1.7e9)))
put += field(2, 2, feature("visits", 2, 0, varint(12)))
put += field(2, 2, feature("scores", 6, 2, field(1, 2, struct.pack("<dd", 0.5, 1.5))))
put += field(2, 2, feature("tags", 7, 2, field(1, 2, b"a") + field(1, 2, b"b")))
put += field(2, 2, feature("counts", 5, 2, field(1, 2, varint(1) + varint(2))))
put += field(3, 2, varint(1) + varint(2))                       # target stores, packed
put += field(4, 2, field(1, 0, varint(1)) + field(2, 0, varint(30)))  # ttl
write("grpc_put_record", "put", put)
write("grpc_put_record", "minimal", field(1, 2, b"g"))


# --- sagemaker_api: [operation byte][name] NUL [body] ------------------------------------------
CONTROL = ["CreateFeatureGroup", "DescribeFeatureGroup", "ListFeatureGroups",
           "UpdateFeatureGroup", "DeleteFeatureGroup", "UpdateFeatureMetadata",
           "DescribeFeatureMetadata", "Search", "CreateContext", "CreateAction", "CreateArtifact",
           "DescribeContext", "DescribeArtifact", "ListContexts", "ListActions", "ListArtifacts",
           "UpdateContext", "UpdateArtifact", "DeleteAction", "DeleteArtifact", "AddAssociation",
           "DeleteAssociation", "ListAssociations", "QueryLineage", "GetLineageGroupPolicy",
           "CreateExperiment", "CreateTrial", "CreateTrialComponent", "DescribeTrialComponent",
           "UpdateTrialComponent", "ListTrialComponents", "ListExperiments",
           "AssociateTrialComponent", "DisassociateTrialComponent", "DeleteExperiment",
           "CreateAutoMLJobV2", "DescribeAutoMLJobV2", "NoSuchOperation"]
RUNTIME = ["PutRecord", "GetRecord", "DeleteRecord", "ListRecords", "BatchGetRecord",
           "BatchWriteRecord", "OpenLineage", "BatchPutMetrics"]


def op(name):
    if name in CONTROL:
        return CONTROL.index(name)
    return len(CONTROL) + RUNTIME.index(name)


def sm(name, path, body, seed):
    data = bytes([op(name)]) + path.encode() + b"\x00"
    data += body if isinstance(body, bytes) else json.dumps(body).encode()
    write("sagemaker_api", seed, data)


fdefs = [{"FeatureName": "id", "FeatureType": "Integral"},
         {"FeatureName": "ts", "FeatureType": "Fractional"},
         {"FeatureName": "v", "FeatureType": "String"},
         {"FeatureName": "emb", "FeatureType": "Fractional", "CollectionType": "Vector",
          "CollectionConfig": {"VectorConfig": {"Dimension": 2}}}]
sm("CreateFeatureGroup", "", {
    "FeatureGroupName": "fz", "RecordIdentifierFeatureName": "id", "EventTimeFeatureName": "ts",
    "FeatureDefinitions": fdefs,
    "OnlineStoreConfig": {"EnableOnlineStore": True, "TtlDuration": {"Unit": "Hours", "Value": 2}},
    "OfflineStoreConfig": {"S3StorageConfig": {"S3Uri": "s3://b/p"}, "TableFormat": "Iceberg"},
    "Tags": [{"Key": "k", "Value": "v"}]}, "create")
sm("DescribeFeatureGroup", "", {"FeatureGroupName": "g"}, "describe")
sm("ListFeatureGroups", "", {"NameContains": "g", "SortBy": "Name", "MaxResults": 5}, "list")
sm("UpdateFeatureGroup", "", {"FeatureGroupName": "g",
   "FeatureAdditions": [{"FeatureName": "w", "FeatureType": "Integral"}],
   "OnlineStoreConfig": {"TtlDuration": {"Unit": "Days", "Value": 1}}}, "update")
sm("UpdateFeatureMetadata", "", {"FeatureGroupName": "g", "FeatureName": "v",
   "Description": "d", "ParameterAdditions": [{"Key": "a", "Value": "b"}]}, "metadata")
sm("Search", "", {"Resource": "FeatureGroup", "SearchExpression": {
    "Filters": [{"Name": "FeatureGroupName", "Operator": "Contains", "Value": "g"}],
    "SubExpressions": [{"Filters": [{"Name": "CreationTime", "Operator": "GreaterThan",
                                     "Value": "2020-01-01"}], "Operator": "Or"}]},
   "SortBy": "Name", "SortOrder": "Ascending"}, "search")
sm("CreateArtifact", "", {"ArtifactName": "a1", "Source": {"SourceUri": "s3://b/k",
   "SourceTypes": [{"SourceIdType": "S3ETag", "Value": "x"}]}, "ArtifactType": "DataSet",
   "Properties": {"p": "q"}}, "artifact")
sm("CreateContext", "", {"ContextName": "c1", "Source": {"SourceUri": "u"},
   "ContextType": "Endpoint"}, "context")
sm("AddAssociation", "", {"SourceArn": "arn:aws:sagemaker:us-east-1:000000000000:artifact/a1",
   "DestinationArn": "arn:aws:sagemaker:us-east-1:000000000000:context/c1",
   "AssociationType": "ContributedTo"}, "association")
sm("QueryLineage", "", {"StartArns": ["arn:aws:sagemaker:us-east-1:000000000000:artifact/a1"],
   "Direction": "Both", "IncludeEdges": True, "MaxDepth": 3,
   "Filters": {"Types": ["DataSet"], "CreatedAfter": 0}}, "query")
sm("CreateExperiment", "", {"ExperimentName": "e1"}, "experiment")
sm("CreateTrialComponent", "", {"TrialComponentName": "t1", "Parameters": {
   "lr": {"NumberValue": 0.1}, "opt": {"StringValue": "adam"}}}, "trial-component")
sm("CreateAutoMLJobV2", "", {"AutoMLJobName": "j"}, "automl")
sm("PutRecord", "g", {"Record": [{"FeatureName": "id", "ValueAsString": "1"},
   {"FeatureName": "ts", "ValueAsString": "1700000000.5"}, {"FeatureName": "v", "ValueAsString": "x"}],
   "TargetStores": ["OnlineStore"], "TtlDuration": {"Unit": "Seconds", "Value": 60}}, "put")
sm("GetRecord", "g", b"RecordIdentifierValueAsString=1&FeatureName=v&ExpirationTimeResponse=Enabled",
   "get")
sm("DeleteRecord", "g", b"RecordIdentifierValueAsString=1&EventTime=1700000001&DeletionMode=HardDelete",
   "delete")
sm("ListRecords", "g", {"MaxResults": 2}, "list-records")
sm("BatchGetRecord", "", {"Identifiers": [{"FeatureGroupName": "g",
   "RecordIdentifiersValueAsString": ["1", "2"], "FeatureNames": ["v"]}]}, "batch-get")
sm("BatchWriteRecord", "", {"Records": [{"FeatureGroupName": "g", "Record": [
   {"FeatureName": "id", "ValueAsString": "2"}, {"FeatureName": "ts", "ValueAsString": "5"}]}]},
   "batch-write")
sm("OpenLineage", "", {"eventType": "COMPLETE", "eventTime": "2026-01-01T00:00:00Z",
   "run": {"runId": "0190f1a2-0000-7000-8000-000000000001"},
   "job": {"namespace": "ns", "name": "job"},
   "inputs": [{"namespace": "s3://b", "name": "in", "facets": {"schema": {"fields": [
       {"name": "a", "type": "int"}]}}}],
   "outputs": [{"namespace": "s3://b", "name": "out", "facets": {"columnLineage": {"fields": {
       "a": {"inputFields": [{"namespace": "s3://b", "name": "in", "field": "a"}]}}}}}],
   "producer": "p", "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json"}, "openlineage")
sm("BatchPutMetrics", "", {"TrialComponentName": "t1", "MetricData": [
   {"MetricName": "loss", "Timestamp": 1700000000, "Step": 1, "Value": 0.5}]}, "metrics")


# --- iam_policy: policy NUL action NUL resource NUL key=value ... -----------------------------
docs = open(os.path.join(REPO, "docs", "security.md")).read()
n = 0
for block in re.findall(r"```json\n(.*?)```", docs, re.S):
    if '"Statement"' in block:
        write("iam_policy", f"docs-{n}", block.strip())
        n += 1
write("iam_policy", "conditions", json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "Read", "Effect": "Allow", "Action": ["sagemaker:Get*", "sagemaker:BatchGetRecord"],
     "Resource": "arn:aws:sagemaker:*:*:feature-group/${aws:username}-*",
     "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1/128"]},
                   "ForAllValues:StringEquals": {"sagemaker:FeatureName": ["a", "b"]},
                   "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
                   "Bool": {"aws:SecureTransport": "true"},
                   "NumericLessThanEquals": {"quiver:BatchSize": "100"},
                   "Null": {"aws:PrincipalTag/team": "false"}}},
    {"Effect": "Deny", "NotAction": "sagemaker:*", "NotResource": "*"}]})
    + "\0sagemaker:GetRecord\0arn:aws:sagemaker:us-east-1:000000000000:feature-group/bob-x"
    + "\0aws:username=bob\0aws:SourceIp=10.1.2.3\0sagemaker:FeatureName=a|b"
    + "\0aws:SecureTransport=true\0aws:CurrentTime=2026-12-07T00:00:00Z")


# --- signatures --------------------------------------------------------------------------------
write("signatures", "quiver", "QUIVER-HMAC-SHA256 Credential=QK123, Date=1700000000000, "
      "Nonce=abc, Signature=" + "0" * 64 + "\0/quiver.featurestore.v1.FeatureStore/GetRecord\0body")
write("signatures", "sigv4", "AWS4-HMAC-SHA256 Credential=QK123/20261207/us-east-1/sagemaker/"
      "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
      + "a" * 64 + "\0/\0{}\020261207T000000Z\0a=1&b=%20\0content-type:application/x-amz-json-1.1"
      "\nx-amz-target:SageMaker.ListFeatureGroups\nx-amz-content-sha256:UNSIGNED-PAYLOAD")


# --- ingest_mapping: TOML NUL payload NUL payload ----------------------------------------------
ingest = open(os.path.join(REPO, "docs", "ingest.md")).read()
n = 0
for block in re.findall(r"```toml\n(.*?)```", ingest, re.S):
    write("ingest_mapping", f"docs-{n}", block.strip() + "\0" + json.dumps(
        {"order_id": "o1", "id": "i", "ts": 1700000000, "n": 3, "amount_usd": 2.5,
         "tags": ["a"], "scores": [1, 2.5], "counts": [1, 2]}) + "\0{\"id\":\"x\",\"ts\":\"2026-12-07T00:00:00.123+01:00\"}")
    n += 1
write("ingest_mapping", "plain", "\0" + json.dumps({"id": "a", "ts": 1.7e12, "n": -1,
      "amount": None, "tags": [], "extra": {"x": 1}}) + "\0[1,2]\0{\"id\":5,\"ts\":\"1700000000\"}")


# --- prep_recipe -------------------------------------------------------------------------------
prep = open(os.path.join(REPO, "docs", "data-prep.md")).read()
steps = re.findall(r"`(\{\"step\": .*?\})` \|", prep)
write("prep_recipe", "every-step", json.dumps({"format": 1, "name": "all", "source": {
    "sql": {"query": "SELECT 1"}}, "steps": [json.loads(s) for s in steps]}))
for i, step in enumerate(steps):
    step = json.loads(step)
    # Onto the fuzz target's table: id, amount, n, city, label.
    text = json.dumps(step)
    for old, new in [("user_id", "id"), ("customer_id", "id"), ("\"ts\"", "\"n\""),
                     ("review", "city"), ("plan", "city"), ("churned", "label"),
                     ("age", "n"), ("url", "city"), ("phone", "city"), ("payload", "city"),
                     ("notes", "label"), ("amt", "amount"), ("items", "city")]:
        text = text.replace(old, new)
    write("prep_recipe", f"step-{i}", json.dumps({"format": 1, "name": f"s{i}", "source": {
        "sql": {"query": "SELECT * FROM t"}}, "steps": [json.loads(text)]}))
for i, block in enumerate(re.findall(r"```json\n(\{\s*\"format\".*?)```", prep, re.S)):
    write("prep_recipe", f"docs-{i}", block.strip())


# --- server_config -----------------------------------------------------------------------------
write("server_config", "deploy", open(os.path.join(REPO, "deploy", "quiver.toml")).read())
for doc in ["operations.md", "security.md", "ingest.md", "offline-store.md"]:
    text = open(os.path.join(REPO, "docs", doc)).read()
    for i, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.S)):
        write("server_config", f"{doc[:-3]}-{i}", block.strip())


# --- ingest_mapping, the CLI's side: a CSV file after a `#csv` line, or JSON objects --------------
write("ingest_mapping", "cli-csv", '#csv\nid,ts,n,tags,counts,emb\nc1,1700000000.5,3,"[""a"",""b""]","[1,2]","[0.5,1]"\n'
      'c2,2026-12-07T00:00:00Z,,[],"[3]",\n,1,x,a,b,c\n')
write("ingest_mapping", "cli-json", "\0" + json.dumps({"id": "c1", "ts": 1.7e9, "n": 3, "tags": ["a"],
                                                     "counts": [1, 2], "emb": [0.5, 1.0]}))
