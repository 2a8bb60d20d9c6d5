"""boto3 in its default configuration against the proxy.

Over HTTPS, boto3 >= 1.36 sends PutObject/UploadPart bodies as aws-chunked
STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC trailer. Run with
`python3 boto3_suite.py ENDPOINT BUCKET` and AWS_* credentials / AWS_CA_BUNDLE in the
environment; prints one line per check and exits non-zero on the first failure.
"""
import hashlib
import os
import sys
import urllib.request
import ssl

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, bucket = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "default"
# botocore still presigns with Signature Version 2 unless told otherwise; this suite asks for
# s3v4 (every other call is SigV4 by default); sigv2.py covers SigV2.
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4")
if mode == "when_required":
    cfg = cfg.merge(Config(request_checksum_calculation="when_required",
                           response_checksum_validation="when_required"))
s3 = boto3.client("s3", endpoint_url=endpoint, config=cfg)


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


s3.create_bucket(Bucket=bucket)
for key, size in [("empty", 0), ("small.txt", 11), ("dir/one mib+", 1 << 20)]:
    data = blob(size, key)
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    check(f"put/get {key!r} ({size} bytes, {mode})", got == data)

head = s3.head_object(Bucket=bucket, Key="dir/one mib+")
check("head content-length", head["ContentLength"] == 1 << 20)

rng = s3.get_object(Bucket=bucket, Key="dir/one mib+", Range="bytes=-100")
check("suffix range", rng["Body"].read() == blob(1 << 20, "dir/one mib+")[-100:])

big = blob(17 * 1024 * 1024 + 3, "multipart")
path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"boto3-{bucket}.bin")
with open(path, "wb") as f:
    f.write(big)
tc = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024,
                    max_concurrency=3)
s3.upload_file(path, bucket, "multi", Config=tc)
os.remove(path)
got = s3.get_object(Bucket=bucket, Key="multi")["Body"].read()
check("upload_file multipart (4 parts, concurrent)", got == big)

listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="dir/").get("Contents", [])]
check("list_objects_v2 prefix", listed == ["dir/one mib+"], listed)

s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "small.txt"})
check("copy_object", s3.get_object(Bucket=bucket, Key="copied")["Body"].read() == blob(11, "small.txt"))

ctx = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small.txt"}, ExpiresIn=300)
with urllib.request.urlopen(url, context=ctx) as r:
    check("presigned GET", r.read() == blob(11, "small.txt"))
url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned-put"}, ExpiresIn=300)
# An explicit type: urllib's default (form-urlencoded) makes moto's web layer eat the body.
req = urllib.request.Request(url, data=b"via presigned put", method="PUT",
                             headers={"Content-Type": "application/octet-stream"})
with urllib.request.urlopen(req, context=ctx) as r:
    check("presigned PUT status", r.status == 200)
got = s3.get_object(Bucket=bucket, Key="presigned-put")["Body"].read()
check("presigned PUT content", got == b"via presigned put", got)

resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in
                         ["empty", "small.txt", "dir/one mib+", "multi", "copied", "presigned-put"]]})
check("delete_objects", len(resp.get("Deleted", [])) == 6 and not resp.get("Errors"))
s3.delete_bucket(Bucket=bucket)
print("boto3 suite passed")
