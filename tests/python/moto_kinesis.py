"""moto_server, with Kinesis resharding as AWS documents it, and with AWS's failures.

Usage: moto_kinesis.py HOST PORT

moto 5 differs from AWS after SplitShard: it moves the parent's records into the stream again,
keeps routing new records to the closed parent, and never ends a closed shard's iterator. AWS
keeps a closed parent's records until retention, routes new records to the open children, and
returns no NextShardIterator once a closed shard has been read to its end. This launcher patches
those three behaviours (nothing else) and then runs moto's own server.

With QUIVER_KINESIS_FAULTS=1 it also fails some GetRecords calls as AWS does under load: every
7th with ExpiredIteratorException and every 11th with ProvisionedThroughputExceededException,
so that a reader's renewal and backoff paths run.
"""

import collections
import hashlib
import os
import sys
import threading

from moto.core.exceptions import JsonRESTError
from moto.kinesis import models
from moto.kinesis.exceptions import InvalidArgumentError
from moto.kinesis.utils import decompose_shard_iterator
from moto.server import main

_split = models.Stream.split_shard


def split_shard(self, shard_to_split, new_starting_hash_key):
    parent = self.shards[shard_to_split]
    kept = parent.records
    # moto's split re-puts the parent's records; with none to re-put, they stay where they are.
    parent.records = collections.OrderedDict()
    try:
        _split(self, shard_to_split, new_starting_hash_key)
    finally:
        parent.records = kept


def get_shard_for_key(self, partition_key, explicit_hash_key):
    if explicit_hash_key:
        key = int(explicit_hash_key)
        if key >= 2**128:
            raise InvalidArgumentError("explicit_hash_key")
    else:
        key = int(hashlib.md5(partition_key.encode("utf-8")).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    return None


_get_records = models.KinesisBackend.get_records
_calls = [0]
_lock = threading.Lock()
FAULTS = os.environ.get("QUIVER_KINESIS_FAULTS") == "1"


def get_records(self, stream_arn, shard_iterator, limit):
    if FAULTS:
        with _lock:
            _calls[0] += 1
            n = _calls[0]
        if n % 7 == 0:
            raise JsonRESTError("ExpiredIteratorException", "Iterator expired (injected).")
        if n % 11 == 0:
            raise JsonRESTError(
                "ProvisionedThroughputExceededException", "Rate exceeded (injected)."
            )
    next_iterator, records, behind = _get_records(self, stream_arn, shard_iterator, limit)
    stream_name, shard_id, last = decompose_shard_iterator(next_iterator)
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    shard = stream.get_shard(shard_id)
    if not shard.is_open and int(last) >= shard.get_max_sequence_number():
        next_iterator = None
    return next_iterator, records, behind


models.Stream.split_shard = split_shard
models.Stream.get_shard_for_key = get_shard_for_key
models.KinesisBackend.get_records = get_records

if __name__ == "__main__":
    main(["-H", sys.argv[1], "-p", sys.argv[2]])
