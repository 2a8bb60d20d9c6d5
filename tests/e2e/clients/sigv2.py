"""boto3 signing with Signature Version 2 (header auth, `signature_version="s3"`) and its
default presigned URLs (SigV2 query auth) against the proxy, which re-signs upstream with
SigV4. Run with `python3 sigv2.py ENDPOINT BUCKET` and AWS_* credentials / AWS_CA_BUNDLE in
the environment; prints one line per check, then PRESIGNED-GET <url>, and exits non-zero on
the first failure.
"""
import os
import ssl
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

endpoint, bucket = sys.argv[1], sys.argv[2]
v2 = boto3.client("s3", endpoint_url=endpoint, config=Config(
    signature_version="s3", s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
# boto3's default presigner: SigV2 query parameters (AWSAccessKeyId, Expires, Signature).
presigner = boto3.client("s3", endpoint_url=endpoint, config=Config(
    s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
tls = ssl.create_default_context(cafile=os.environ["AWS_CA_BUNDLE"])


def check(name, cond, got=None):
    if not cond:
        print(f"FAIL {name}: got {got!r}")
        sys.exit(1)
    print(f"ok {name}")


def fetch(url, method="GET", data=None):
    # An explicit empty Content-Type: urllib would add a form type the URL did not sign.
    req = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": ""})
    try:
        with urllib.request.urlopen(req, context=tls, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


v2.create_bucket(Bucket=bucket)
v2.put_object(Bucket=bucket, Key="a b/v2.txt", Body=b"signed with v2",
              Metadata={"who": "sigv2"}, ContentType="text/plain")
got = v2.get_object(Bucket=bucket, Key="a b/v2.txt")
check("v2 put/get", got["Body"].read() == b"signed with v2")
check("v2 metadata", got["Metadata"].get("who") == "sigv2", got["Metadata"])
listed = [o["Key"] for o in v2.list_objects(Bucket=bucket).get("Contents", [])]
check("v2 list", listed == ["a b/v2.txt"], listed)
# A response override: a signed parameter (whether the backend honours it is its own business).
got = v2.get_object(Bucket=bucket, Key="a b/v2.txt", ResponseContentType="text/x-v2")
check("v2 response override", got["Body"].read() == b"signed with v2")

# Multipart: uploadId and partNumber are signed sub-resources.
up = v2.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
part = b"x" * (5 * 1024 * 1024)
e1 = v2.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=part)["ETag"]
e2 = v2.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=2, Body=b"tail")["ETag"]
v2.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
    "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
body = v2.get_object(Bucket=bucket, Key="mp")["Body"].read()
check("v2 multipart", body == part + b"tail", len(body))

url = presigner.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre.txt"},
                                       ExpiresIn=300)
check("presigned url is SigV2", "AWSAccessKeyId=" in url and "X-Amz-" not in url, url)
status, _ = fetch(url, "PUT", b"presigned v2 put")
check("presigned v2 PUT", status == 200, status)
url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre.txt"},
                                       ExpiresIn=300)
status, data = fetch(url)
check("presigned v2 GET", (status, data) == (200, b"presigned v2 put"), (status, data))
status, data = fetch(url.replace("pre.txt", "a%20b/v2.txt"))
check("presigned v2 URL for another key refused", status == 403, (status, data))
print(f"PRESIGNED-GET {url}")
print("sigv2 suite passed")
