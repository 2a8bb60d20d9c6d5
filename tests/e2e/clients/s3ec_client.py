"""The AWS S3 Encryption Client for Python (amazon-s3-encryption-client-python 4.0.0), talking
straight to the backend as an application that uses it would, with the KMS key of the
proxy's bucket rule.

Run as `python3 s3ec_client.py write BUCKET` or `python3 s3ec_client.py read BUCKET KEY=MD5 ...`
with the backend's endpoint and credentials in DIRECT_ENDPOINT, DIRECT_ACCESS_KEY_ID,
DIRECT_SECRET_ACCESS_KEY, and the KMS key in KMS_ENDPOINT, KMS_ACCESS_KEY_ID,
KMS_SECRET_ACCESS_KEY, KMS_KEY_ID.

`write` creates BUCKET and stores, with the client: format version 3 (key commitment, its
default) of several sizes, format version 2 (ALG_AES_256_GCM_IV12_TAG16_NO_KDF), and a
version 3 object whose data key is then moved into an instruction file (this client reads
instruction files but does not write them; the layout is the specification's, and the client
itself reads it back). It prints `wrote KEY SIZE MD5` per object.

`read` reads each KEY with the client and checks the MD5 of its plaintext: objects s3seal
wrote. It prints `read KEY SIZE MD5` per object.

Exits non-zero on the first failure.
"""
import hashlib
import json
import os
import sys

import boto3
from botocore.config import Config
from s3_encryption import (
    AlgorithmSuite,
    CommitmentPolicy,
    S3EncryptionClient,
    S3EncryptionClientConfig,
)
from s3_encryption.materials.kms_keyring import KmsKeyring

mode, bucket = sys.argv[1:3]
cfg = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 1},
    signature_version="s3v4",
    # Ceph RGW 16 refuses the trailer form boto3 sends by default (411/400).
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
    read_timeout=30,
)
direct = boto3.client(
    "s3",
    endpoint_url=os.environ["DIRECT_ENDPOINT"],
    aws_access_key_id=os.environ["DIRECT_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["DIRECT_SECRET_ACCESS_KEY"],
    region_name="us-east-1",
    config=cfg,
)
kms = boto3.client(
    "kms",
    endpoint_url=os.environ["KMS_ENDPOINT"],
    aws_access_key_id=os.environ["KMS_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["KMS_SECRET_ACCESS_KEY"],
    region_name="us-east-1",
)
keyring = KmsKeyring(kms_client=kms, kms_key_id=os.environ["KMS_KEY_ID"])


def client(**options):
    # A fresh plain client per S3EC client: the S3EC registers its hooks on the one it wraps.
    plain = boto3.client(
        "s3",
        endpoint_url=os.environ["DIRECT_ENDPOINT"],
        aws_access_key_id=os.environ["DIRECT_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["DIRECT_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=cfg,
    )
    return S3EncryptionClient(
        wrapped_s3_client=plain,
        config=S3EncryptionClientConfig(keyring=keyring, **options),
    )


def payload(size, seed):
    return bytes((i * 31 + seed * 7) % 251 for i in range(size))


def md5(data):
    return hashlib.md5(data).hexdigest()


def fail(what):
    print(f"FAIL {what}")
    sys.exit(1)


if mode == "write":
    direct.create_bucket(Bucket=bucket)
    v3 = client()
    v2 = client(
        encryption_algorithm=AlgorithmSuite.ALG_AES_256_GCM_IV12_TAG16_NO_KDF,
        commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
    )
    written = [
        ("v3-empty", v3, payload(0, 1)),
        ("v3-small", v3, payload(1000, 2)),
        ("v3-large", v3, payload(3 * 1024 * 1024 + 5, 3)),
        ("v2-small", v2, payload(70001, 4)),
        ("v3-instruction", v3, payload(5000, 5)),
    ]
    for key, s3ec, data in written:
        s3ec.put_object(Bucket=bucket, Key=key, Body=data)
        meta = direct.head_object(Bucket=bucket, Key=key)["Metadata"]
        expected = "x-amz-c" if s3ec is v3 else "x-amz-key-v2"
        if expected not in meta:
            fail(f"{key}: the client wrote no {expected}: {meta}")
    # The instruction-file layout (metadata-strategy.md, "V3 Instruction Files"): x-amz-c,
    # x-amz-d and x-amz-i stay in the object metadata, the rest moves to KEY.instruction.
    key = "v3-instruction"
    meta = direct.head_object(Bucket=bucket, Key=key)["Metadata"]
    in_object = {k: meta[k] for k in ("x-amz-c", "x-amz-d", "x-amz-i")}
    in_file = {k: v for k, v in meta.items() if k in ("x-amz-3", "x-amz-w", "x-amz-t", "x-amz-m")}
    direct.put_object(
        Bucket=bucket,
        Key=key + ".instruction",
        Body=json.dumps(in_file).encode(),
        Metadata={"x-amz-crypto-instr-file": ""},
    )
    direct.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        Metadata=in_object,
        MetadataDirective="REPLACE",
    )
    if "x-amz-3" in direct.head_object(Bucket=bucket, Key=key)["Metadata"]:
        fail("the data key is still in the object metadata")
    for key, s3ec, data in written:
        # The client reads back what it wrote (the instruction file too).
        got = s3ec.get_object(Bucket=bucket, Key=key)["Body"].read()
        if got != data:
            fail(f"{key}: the client does not read back what it wrote")
        print(f"wrote {key} {len(data)} {md5(data)}")
elif mode == "read":
    s3ec = client()
    for arg in sys.argv[3:]:
        key, want = arg.split("=")
        meta = direct.head_object(Bucket=bucket, Key=key)["Metadata"]
        if meta.get("x-amz-c") != "115" or "x-amz-d" not in meta:
            fail(f"{key}: not stored as format version 3: {meta}")
        got = s3ec.get_object(Bucket=bucket, Key=key)["Body"].read()
        if md5(got) != want:
            fail(f"{key}: md5 {md5(got)}, expected {want}")
        print(f"read {key} {len(got)} {md5(got)}")
else:
    fail(f"unknown mode {mode}")
print("s3ec client done")
