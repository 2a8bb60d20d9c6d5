"""CopyObject and UploadPartCopy through the proxy in buckets with an SSE rule, with boto3.

Run as `python3 sse_copy.py ENDPOINT BUCKET_A BUCKET_B RULE ORDER` with the proxy's
AWS_* credentials and AWS_CA_BUNDLE in the environment, and the backend's own in
DIRECT_ENDPOINT, DIRECT_ACCESS_KEY_ID, DIRECT_SECRET_ACCESS_KEY. RULE is the buckets' rule:
`sse-c` (the object must be unreadable at the backend without the key: AT_REST=refused),
`sse-kms` (the backend must report aws:kms and KMS_KEY_ID) or anything else (no check at
rest). ORDER `objects-first` or `parts-first` says which kind of copy comes first, so that
each can be the one that finds out what the backend supports. Prints one line per check and
exits non-zero on the first failure.
"""
import hashlib
import os
import sys

import boto3
import botocore
from botocore.config import Config

endpoint, bucket_a, bucket_b, rule, order = sys.argv[1:6]
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4")
s3 = boto3.client("s3", endpoint_url=endpoint, config=cfg)
direct = boto3.client(
    "s3",
    endpoint_url=os.environ["DIRECT_ENDPOINT"],
    aws_access_key_id=os.environ["DIRECT_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["DIRECT_SECRET_ACCESS_KEY"],
    region_name="us-east-1",
    # Ceph RGW 16 refuses the trailer form boto3 sends by default (411/400).
    config=cfg.merge(Config(request_checksum_calculation="when_required",
                            response_checksum_validation="when_required",
                            read_timeout=10)),
)


def check(name, cond, got=None):
    if not cond:
        print(f"FAIL {name}: got {got!r}")
        sys.exit(1)
    print(f"ok {name}")


def blob(n, seed):
    out = bytearray()
    h = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:n])


def get(bucket, key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def at_rest(bucket, key):
    """What the backend itself says about the stored object."""
    if rule == "sse-c":
        try:
            direct.get_object(Bucket=bucket, Key=key)["Body"].read()
            check(f"{bucket}/{key} unreadable at the backend without the key", False, "200")
        except botocore.exceptions.ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            check(f"{bucket}/{key} unreadable at the backend without the key",
                  status in (400, 403), status)
    elif rule == "sse-kms":
        head = direct.head_object(Bucket=bucket, Key=key)
        check(f"{bucket}/{key} is aws:kms at the backend",
              head.get("ServerSideEncryption") == "aws:kms"
              and head.get("SSEKMSKeyId", "").endswith(os.environ["KMS_KEY_ID"]), head)


# 5 MiB + 3: a part copy of the first 5 MiB, and one of the whole.
PART = 5 * 1024 * 1024
data = blob(PART + 3, "source")
for b in (bucket_a, bucket_b):
    s3.create_bucket(Bucket=b)
s3.put_object(Bucket=bucket_a, Key="src", Body=data, ContentType="text/x-source",
              Metadata={"colour": "blue"})
at_rest(bucket_a, "src")
etag = s3.head_object(Bucket=bucket_a, Key="src")["ETag"]


def objects():
    # Same bucket, metadata copied (the default directive).
    out = s3.copy_object(Bucket=bucket_a, Key="copy", CopySource=f"{bucket_a}/src")
    check("CopyObject answers an ETag", bool(out["CopyObjectResult"].get("ETag")), out)
    check("CopyObject same bucket: bytes", get(bucket_a, "copy") == data)
    head = s3.head_object(Bucket=bucket_a, Key="copy")
    check("CopyObject COPY keeps metadata", head["Metadata"] == {"colour": "blue"}, head["Metadata"])
    check("CopyObject COPY keeps Content-Type", head["ContentType"] == "text/x-source",
          head["ContentType"])
    at_rest(bucket_a, "copy")
    # Across buckets, metadata replaced, with a source condition that holds.
    s3.copy_object(Bucket=bucket_b, Key="dir/replaced", CopySource=f"{bucket_a}/src",
                   MetadataDirective="REPLACE", Metadata={"colour": "red"},
                   ContentType="application/x-replaced", CopySourceIfMatch=etag)
    check("CopyObject across buckets: bytes", get(bucket_b, "dir/replaced") == data)
    head = s3.head_object(Bucket=bucket_b, Key="dir/replaced")
    check("CopyObject REPLACE sets metadata", head["Metadata"] == {"colour": "red"},
          head["Metadata"])
    check("CopyObject REPLACE sets Content-Type",
          head["ContentType"] == "application/x-replaced", head["ContentType"])
    at_rest(bucket_b, "dir/replaced")
    # A source condition that fails is answered as S3 does.
    try:
        s3.copy_object(Bucket=bucket_b, Key="never", CopySource=f"{bucket_a}/src",
                       CopySourceIfNoneMatch=etag)
        check("CopyObject x-amz-copy-source-if-none-match refused", False, "200")
    except botocore.exceptions.ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        check("CopyObject x-amz-copy-source-if-none-match refused", status == 412, status)


def parts():
    up = s3.create_multipart_upload(Bucket=bucket_b, Key="assembled", ContentType="text/x-parts")
    uid = up["UploadId"]
    done = []
    # A range, then the whole source (every part but the last is at least 5 MiB).
    for n, rng in ((1, {"CopySourceRange": f"bytes=0-{PART - 1}"}), (2, {})):
        out = s3.upload_part_copy(Bucket=bucket_b, Key="assembled", UploadId=uid, PartNumber=n,
                                  CopySource={"Bucket": bucket_a, "Key": "src"}, **rng)
        check(f"UploadPartCopy {n} answers an ETag", bool(out["CopyPartResult"].get("ETag")), out)
        done.append({"PartNumber": n, "ETag": out["CopyPartResult"]["ETag"]})
    # A part of the client's own after the copies.
    tail = blob(1000, "tail")
    out = s3.upload_part(Bucket=bucket_b, Key="assembled", UploadId=uid, PartNumber=3, Body=tail)
    done.append({"PartNumber": 3, "ETag": out["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket_b, Key="assembled", UploadId=uid,
                                 MultipartUpload={"Parts": done})
    check("UploadPartCopy upload completed: bytes",
          get(bucket_b, "assembled") == data[:PART] + data + tail)
    at_rest(bucket_b, "assembled")


if order == "parts-first":
    parts()
    objects()
else:
    objects()
    parts()
print("sse copy suite passed")
