"""Browser form uploads (PostObject) through the proxy, with `requests` and policies made by
boto3's `generate_presigned_post` (the way web backends make them).

Run as `python3 post_form.py ENDPOINT BUCKET suite` with the proxy's AWS_* credentials and
AWS_CA_BUNDLE in the environment: creates BUCKET, checks successes (each answer form),
each refusal kind and that no refused upload leaves an object, then deletes what it made.
`python3 post_form.py ENDPOINT BUCKET store KEY FILE` only stores FILE at KEY with a form
(the bucket must exist). Prints one line per check; exits non-zero on the first failure.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import sys
import zlib

import boto3
import botocore
import requests
from botocore.config import Config

endpoint, bucket, mode = sys.argv[1:4]
cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, signature_version="s3v4")
s3 = boto3.client("s3", endpoint_url=endpoint, config=cfg)
CA = os.environ["AWS_CA_BUNDLE"]
REGION = os.environ["AWS_DEFAULT_REGION"]


def check(name, cond, got=None):
    if not cond:
        print(f"FAIL {name}: got {got!r}")
        sys.exit(1)
    print(f"ok {name}")


def post(url, fields, data, filename="file.bin", **kw):
    # A fresh connection each time: `requests.post` opens its own session. The file goes
    # last, after the fields, as browsers send it.
    return requests.post(url, data=fields, files={"file": (filename, data)}, verify=CA,
                         allow_redirects=False, timeout=30, **kw)


def code(resp):
    text = resp.text
    start = text.find("<Code>")
    return text[start + 6:text.find("</Code>")] if start >= 0 else None


def absent(key):
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"] in ("404", "NoSuchKey")


def presign(key, fields=None, conditions=None, expires=300):
    return s3.generate_presigned_post(bucket, key, Fields=fields, Conditions=conditions,
                                      ExpiresIn=expires)


def signed(policy_doc):
    """Fields for a policy document of our own (boto3 only signs well-formed ones): a string,
    or a function of the credential and date fields, which S3 matches exactly only."""
    creds = boto3.Session().get_credentials()
    now = datetime.datetime.now(datetime.timezone.utc)
    date = now.strftime("%Y%m%d")
    credential = f"{creds.access_key}/{date}/{REGION}/s3/aws4_request"
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    if callable(policy_doc):
        policy_doc = policy_doc(credential, amz_date)
    b64 = base64.b64encode(policy_doc.encode()).decode()
    key = ("AWS4" + creds.secret_key).encode()
    for part in (date, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": credential,
        "x-amz-date": amz_date,
        "policy": b64,
        "x-amz-signature": hmac.new(key, b64.encode(), hashlib.sha256).hexdigest(),
    }


if mode == "store":
    key, path = sys.argv[4:6]
    with open(path, "rb") as f:
        data = f.read()
    p = presign(key)
    r = post(p["url"], p["fields"], data)
    check("store: 204", r.status_code == 204, (r.status_code, r.text))
    print("post store passed")
    sys.exit(0)

s3.create_bucket(Bucket=bucket)
made = []

# --- successes ---
data = os.urandom(70_000) + b"end"
p = presign("plain.bin")
r = post(p["url"], p["fields"], data)
check("default answer 204", r.status_code == 204, (r.status_code, r.text))
check("ETag of the object", r.headers.get("ETag") == '"%s"' % hashlib.md5(data).hexdigest(),
      r.headers.get("ETag"))
got = s3.get_object(Bucket=bucket, Key="plain.bin")["Body"].read()
check("stored bytes are the file", got == data, len(got))
made.append("plain.bin")

fields = {"Content-Type": "text/plain", "x-amz-meta-owner": "alice",
          "success_action_status": "201", "x-ignore-note": "not covered"}
conditions = [{"Content-Type": "text/plain"}, ["starts-with", "$x-amz-meta-owner", ""],
              {"success_action_status": "201"}, ["content-length-range", 1, 1000]]
p = presign("docs/${filename}", fields, conditions)
r = post(p["url"], p["fields"], b"hello form", filename="note.txt")
check("201 with PostResponse", r.status_code == 201 and "<PostResponse>" in r.text,
      (r.status_code, r.text))
check("PostResponse key has ${filename}", "<Key>docs/note.txt</Key>" in r.text, r.text)
check("PostResponse bucket", f"<Bucket>{bucket}</Bucket>" in r.text, r.text)
head = s3.head_object(Bucket=bucket, Key="docs/note.txt")
check("Content-Type field stored", head["ContentType"] == "text/plain", head["ContentType"])
check("x-amz-meta field stored", head["Metadata"].get("owner") == "alice", head["Metadata"])
made.append("docs/note.txt")

p = presign("ok200.txt", {"success_action_status": "200"}, [{"success_action_status": "200"}])
r = post(p["url"], p["fields"], b"x")
check("200 on request", r.status_code == 200 and r.text == "", (r.status_code, r.text))
made.append("ok200.txt")

redirect = "https://app.example/done"
p = presign("redir.txt", {"success_action_redirect": redirect},
            [{"success_action_redirect": redirect}])
r = post(p["url"], p["fields"], b"redirected")
loc = r.headers.get("Location", "")
check("303 redirect", r.status_code == 303, (r.status_code, r.text))
check("redirect carries bucket, key, etag",
      loc.startswith(redirect + "?bucket=" + bucket) and "key=redir.txt" in loc
      and "etag=%22" in loc, loc)
made.append("redir.txt")

tagging = ("<Tagging><TagSet><Tag><Key>team</Key><Value>web</Value></Tag>"
           "<Tag><Key>kind</Key><Value>a b</Value></Tag></TagSet></Tagging>")
p = presign("tagged.txt", {"tagging": tagging}, [{"tagging": tagging}])
r = post(p["url"], p["fields"], b"tagged")
check("tagging field", r.status_code == 204, (r.status_code, r.text))
try:
    tags = {t["Key"]: t["Value"]
            for t in s3.get_object_tagging(Bucket=bucket, Key="tagged.txt")["TagSet"]}
    check("tags stored", tags == {"team": "web", "kind": "a b"}, tags)
except botocore.exceptions.ClientError as e:
    # s3s-fs has no object tagging.
    check("tags: backend without tagging", e.response["Error"]["Code"] == "NotImplemented", e)
made.append("tagged.txt")

crc = base64.b64encode(zlib.crc32(b"checked").to_bytes(4, "big")).decode()
p = presign("crc.txt", {"x-amz-checksum-crc32": crc}, [{"x-amz-checksum-crc32": crc}])
r = post(p["url"], p["fields"], b"checked")
check("checksum field verified and stored", r.status_code == 204, (r.status_code, r.text))
made.append("crc.txt")

p = presign("empty.bin")
r = post(p["url"], p["fields"], b"")
check("empty file", r.status_code == 204 and
      s3.head_object(Bucket=bucket, Key="empty.bin")["ContentLength"] == 0, r.text)
made.append("empty.bin")

# --- refusals: each with S3's status and code, and nothing stored ---
def refused(name, resp, status, want, key):
    check(f"{name}: {status} {want}", resp.status_code == status and code(resp) == want,
          (resp.status_code, resp.text))
    check(f"{name}: no object", absent(key))


p = presign("range.bin", conditions=[["content-length-range", 10, 20]])
refused("too large", post(p["url"], p["fields"], b"x" * 21), 400, "EntityTooLarge", "range.bin")
refused("too small", post(p["url"], p["fields"], b"x" * 9), 400, "EntityTooSmall", "range.bin")
r = post(p["url"], p["fields"], b"x" * 20)
check("in range", r.status_code == 204, r.text)
made.append("range.bin")

p = presign("expired.bin", expires=-60)
refused("expired", post(p["url"], p["fields"], b"x"), 403, "AccessDenied", "expired.bin")
check("expired message", "Policy expired" in post(p["url"], p["fields"], b"x").text)

p = presign("user/a/${filename}")
f = dict(p["fields"], key="other/evil.bin")
r = post(p["url"], f, b"x")
refused("key outside the prefix", r, 403, "AccessDenied", "other/evil.bin")
check("condition named", "Policy Condition failed" in r.text, r.text)

p = presign("extra.bin")
r = post(p["url"], dict(p["fields"], **{"x-amz-meta-sneaky": "1"}), b"x")
refused("extra field", r, 403, "AccessDenied", "extra.bin")
check("extra field named", "Extra input fields: x-amz-meta-sneaky" in r.text, r.text)

p = presign("ct.bin", {"Content-Type": "image/png"}, [["starts-with", "$Content-Type", "image/"]])
refused("starts-with fails", post(p["url"], dict(p["fields"], **{"Content-Type": "text/html"}),
                                  b"x"), 403, "AccessDenied", "ct.bin")

p = presign("sig.bin")
bad = dict(p["fields"], **{"x-amz-signature": "0" * 64})
refused("bad signature", post(p["url"], bad, b"x"), 403, "SignatureDoesNotMatch", "sig.bin")
other_bucket_url = p["url"].rsplit("/", 1)[0] + "/" + bucket + "-other"
r = post(other_bucket_url, p["fields"], b"x")
check("policy for another bucket", r.status_code == 403 and code(r) == "AccessDenied",
      (r.status_code, r.text))

bad_policy = signed("{not json")
r = post(p["url"], dict(bad_policy, key="bad-policy.bin"), b"x")
refused("policy not JSON", r, 400, "InvalidPolicyDocument", "bad-policy.bin")

def own_policy(credential_condition):
    return lambda credential, amz_date: json.dumps(
        {"expiration": "2099-01-01T00:00:00Z",
         "conditions": [{"bucket": bucket}, ["starts-with", "$key", ""],
                        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
                        credential_condition(credential),
                        {"x-amz-date": amz_date}]})


loose = dict(signed(own_policy(lambda _: ["starts-with", "$x-amz-credential", ""])),
             key="loose.bin")
refused("starts-with on x-amz-credential", post(p["url"], loose, b"x"), 400,
        "InvalidPolicyDocument", "loose.bin")
own = dict(signed(own_policy(lambda credential: {"x-amz-credential": credential})),
           key="own.bin")
r = post(p["url"], own, b"own policy")
check("a policy signed by hand", r.status_code == 204, (r.status_code, r.text))
made.append("own.bin")
r = requests.post(p["url"], data=dict(own, key="nofile.bin"), verify=CA, timeout=30,
                  files=[("x-ignore-a", (None, "v"))])
refused("no file", r, 400, "InvalidArgument", "nofile.bin")

r = requests.post(p["url"], data=b"key=x", verify=CA, timeout=30,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
check("not multipart: 412", r.status_code == 412 and code(r) == "PreconditionFailed",
      (r.status_code, r.text))

r = requests.post(p["url"], data=b"--nope\r\n\r\n", verify=CA, timeout=30,
                  headers={"Content-Type": "multipart/form-data; boundary=xyz"})
refused("malformed body", r, 400, "MalformedPOSTRequest", "x")

# The file followed by another field: the file's end cannot be known without buffering it.
p = presign("after.bin")
req = requests.Request("POST", p["url"], data=p["fields"],
                       files=[("file", ("f", b"data")), ("x-ignore-late", (None, "v"))]).prepare()
r = requests.Session().send(req, verify=CA, timeout=30)
refused("field after the file", r, 400, "MalformedPOSTRequest", "after.bin")

r = requests.post(p["url"], data={"key": "anon.bin"}, files={"file": ("f", b"x")}, verify=CA,
                  timeout=30)
refused("unsigned form", r, 403, "AccessDenied", "anon.bin")

for key in made:
    s3.delete_object(Bucket=bucket, Key=key)
s3.delete_bucket(Bucket=bucket)
print("post suite passed")
