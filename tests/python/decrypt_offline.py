"""Decrypts a Quiver offline file with pyarrow's CryptoFactory and a KMS client of its own,
independently of Quiver, and prints what it read as JSON.

    decrypt_offline.py FILE local KEYS_DIR GROUP_ARN
    decrypt_offline.py FILE aws KMS_ENDPOINT GROUP_ARN

The KMS client gets each file key's wrappedDEK and masterKeyID, as pyarrow calls any KMS
client. `local` unwraps with Quiver's local master key files (AES-256-GCM: "QLK", version u32
big-endian, nonce, ciphertext and tag; additional data "aws:sagemaker:feature-group-arn/<ARN>");
`aws` calls KMS Decrypt with the encryption context {"aws:sagemaker:feature-group-arn": ARN}.

Prints {"plain_read": outcome of reading without keys, "rows": [...], "unwraps": n}.
"""
import base64
import json
import os
import struct
import sys
from datetime import timedelta

import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

PATH, MODE, WHERE, ARN = sys.argv[1:5]
CONTEXT = "aws:sagemaker:feature-group-arn"
UNWRAPS = []


class QuiverKms(pe.KmsClient):
    def __init__(self, config):
        pe.KmsClient.__init__(self)

    def wrap_key(self, key_bytes, master_key_identifier):
        raise NotImplementedError("this client only reads")

    def unwrap_key(self, wrapped_key, master_key_identifier):
        UNWRAPS.append(master_key_identifier)
        wrapped = base64.b64decode(wrapped_key)
        if MODE == "local":
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            assert wrapped[:3] == b"QLK", "not a versioned local wrapping"
            (version,) = struct.unpack(">I", wrapped[3:7])
            stem = master_key_identifier.replace("/", "_")
            name = f"{stem}.key" if version == 1 else f"{stem}.v{version}.key"
            master = open(os.path.join(WHERE, name), "rb").read()
            nonce, sealed = wrapped[7:19], wrapped[19:]
            return AESGCM(master).decrypt(nonce, sealed, f"{CONTEXT}/{ARN}".encode())
        import boto3

        kms = boto3.client("kms", endpoint_url=WHERE, region_name="us-east-1")
        return kms.decrypt(
            CiphertextBlob=wrapped,
            KeyId=master_key_identifier,
            EncryptionContext={CONTEXT: ARN},
        )["Plaintext"]


try:
    pq.read_table(PATH)
    plain_read = "read without keys"
except Exception as e:  # noqa: BLE001
    plain_read = "refused: %s" % type(e).__name__

factory = pe.CryptoFactory(lambda config: QuiverKms(config))
properties = factory.file_decryption_properties(
    pe.KmsConnectionConfig(), pe.DecryptionConfiguration(cache_lifetime=timedelta(minutes=1))
)
table = pq.read_table(PATH, decryption_properties=properties)
print(
    json.dumps(
        {"plain_read": plain_read, "rows": table.to_pylist(), "unwraps": len(UNWRAPS)},
        default=str,
    )
)
