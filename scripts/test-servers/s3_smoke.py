#!/usr/bin/env python3
"""S3 smoke test against the SeaweedFS started by start.sh: the operations a chunk store needs.

Usage: s3_smoke.py [ENV_FILE]   (default: the SKALD_TEST_* variables of the environment)
Run it with the venv's python (it has boto3): .test-servers/venv/bin/python s3_smoke.py ...
Works in a bucket of its own (created and deleted here); also checks that the tests' bucket
exists. Exit status 0 when every check passed.
Adapted from the shared test-servers recipe (s3test.py).
"""
import hashlib
import io
import os
import sys
import time
import uuid

from boto3.s3.transfer import TransferConfig

import testenv

env = testenv.env_from_argv()
s3 = testenv.s3_client(env)
results = {}


def step(name, f):
    t = time.time()
    try:
        r = f()
        results[name] = True
        print(f"OK   {name} ({(time.time() - t) * 1000:.0f} ms) {r if r is not None else ''}")
    except Exception as e:  # noqa: BLE001 - a smoke test reports every failure and goes on
        results[name] = False
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


b = f"smoke-{uuid.uuid4().hex[:12]}"
step("tests' bucket exists (HeadBucket)",
     lambda: s3.head_bucket(Bucket=env["SKALD_TEST_S3_BUCKET"])["ResponseMetadata"]["HTTPStatusCode"])
step("create_bucket", lambda: s3.create_bucket(Bucket=b)["ResponseMetadata"]["HTTPStatusCode"])
step("list_buckets", lambda: expect(b in [x["Name"] for x in s3.list_buckets()["Buckets"]], "bucket not listed"))
step("head_bucket", lambda: s3.head_bucket(Bucket=b)["ResponseMetadata"]["HTTPStatusCode"])
data = os.urandom(100000)
step("put_object", lambda: s3.put_object(Bucket=b, Key="fake/chunks/abc/1", Body=data)["ETag"])
step("put_object2", lambda: s3.put_object(Bucket=b, Key="fake/chunks/abc/2", Body=b"hello")["ETag"])
step("put_object3", lambda: s3.put_object(Bucket=b, Key="other/x", Body=b"x")["ETag"])


def get():
    r = s3.get_object(Bucket=b, Key="fake/chunks/abc/1")["Body"].read()
    expect(r == data, "content mismatch")
    return len(r)


step("get_object", get)
step("head_object", lambda: expect(s3.head_object(Bucket=b, Key="fake/chunks/abc/1")["ContentLength"] == len(data), "length"))


def ranged():
    r = s3.get_object(Bucket=b, Key="fake/chunks/abc/1", Range="bytes=100-199")
    body = r["Body"].read()
    expect(body == data[100:200], "range mismatch")
    return (r["ResponseMetadata"]["HTTPStatusCode"], r.get("ContentRange"))


step("ranged_get", ranged)


def ranged_suffix():
    r = s3.get_object(Bucket=b, Key="fake/chunks/abc/1", Range="bytes=-10")
    expect(r["Body"].read() == data[-10:], "suffix range mismatch")
    return (r["ResponseMetadata"]["HTTPStatusCode"], r.get("ContentRange"))


step("ranged_get_suffix", ranged_suffix)
step("list_objects_v2 prefix", lambda: expect(
    [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="fake/")["Contents"]]
    == ["fake/chunks/abc/1", "fake/chunks/abc/2"], "wrong keys"))
step("list_objects_v2 delimiter", lambda: expect(
    [p["Prefix"] for p in s3.list_objects_v2(Bucket=b, Delimiter="/")["CommonPrefixes"]] == ["fake/", "other/"],
    "wrong common prefixes"))


def paginated():
    r = s3.list_objects_v2(Bucket=b, MaxKeys=1)
    keys = [o["Key"] for o in r["Contents"]]
    while r.get("IsTruncated"):
        r = s3.list_objects_v2(Bucket=b, MaxKeys=1, ContinuationToken=r["NextContinuationToken"])
        keys += [o["Key"] for o in r.get("Contents", [])]
    expect(len(keys) == 3, f"got {keys}")
    return keys


step("list_objects_v2 paginated MaxKeys=1", paginated)
step("list_objects v1", lambda: len(s3.list_objects(Bucket=b)["Contents"]))


def missing():
    try:
        s3.get_object(Bucket=b, Key="nope")
    except s3.exceptions.NoSuchKey:
        return "NoSuchKey"
    raise AssertionError("no error for a missing key")


step("get_missing -> NoSuchKey", missing)
big = os.urandom(20 * 1024 * 1024)


def multipart():
    u = s3.create_multipart_upload(Bucket=b, Key="big/obj")["UploadId"]
    parts, ps = [], 5 * 1024 * 1024
    for i in range(0, len(big), ps):
        n = i // ps + 1
        e = s3.upload_part(Bucket=b, Key="big/obj", UploadId=u, PartNumber=n, Body=big[i:i + ps])["ETag"]
        parts.append({"ETag": e, "PartNumber": n})
    listed = s3.list_parts(Bucket=b, Key="big/obj", UploadId=u)["Parts"]
    s3.complete_multipart_upload(Bucket=b, Key="big/obj", UploadId=u, MultipartUpload={"Parts": parts})
    got = s3.get_object(Bucket=b, Key="big/obj")["Body"].read()
    expect(hashlib.md5(got).digest() == hashlib.md5(big).digest(), "content mismatch")
    return f"{len(listed)} parts"


step("multipart_upload 20MB (4x5MB) + verify", multipart)


def multipart_abort():
    u = s3.create_multipart_upload(Bucket=b, Key="big/aborted")["UploadId"]
    s3.upload_part(Bucket=b, Key="big/aborted", UploadId=u, PartNumber=1, Body=b"x" * 1024)
    listed = [x["Key"] for x in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])]
    s3.abort_multipart_upload(Bucket=b, Key="big/aborted", UploadId=u)
    expect("big/aborted" in listed, "upload not listed")


step("multipart abort + list_multipart_uploads", multipart_abort)


def transfer_manager():
    cfg = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024)
    s3.upload_fileobj(io.BytesIO(big), b, "big/transfer", Config=cfg)
    out = io.BytesIO()
    s3.download_fileobj(b, "big/transfer", out)
    expect(out.getvalue() == big, "content mismatch")


step("transfer manager upload/download 20MB", transfer_manager)


def ranged_big():
    r = s3.get_object(Bucket=b, Key="big/obj", Range="bytes=5242870-5242889")["Body"].read()
    expect(r == big[5242870:5242890], "range mismatch")


step("ranged_get across part boundary", ranged_big)
step("copy_object", lambda: s3.copy_object(Bucket=b, Key="copy/x", CopySource={"Bucket": b, "Key": "other/x"})
     ["CopyObjectResult"]["ETag"])
step("delete_object", lambda: s3.delete_object(Bucket=b, Key="other/x")["ResponseMetadata"]["HTTPStatusCode"])


def gone():
    try:
        s3.head_object(Bucket=b, Key="other/x")
    except s3.exceptions.ClientError as e:
        expect(e.response["Error"]["Code"] in ("404", "NoSuchKey"), str(e))
        return "404"
    raise AssertionError("deleted object still there")


step("deleted object gone", gone)
step("delete_objects (batch)", lambda: expect(len(s3.delete_objects(Bucket=b, Delete={"Objects": [
    {"Key": k} for k in ["fake/chunks/abc/1", "fake/chunks/abc/2", "big/obj", "big/transfer", "copy/x"]]})
    .get("Deleted", [])) == 5, "not all deleted"))
step("list after delete", lambda: expect(s3.list_objects_v2(Bucket=b).get("KeyCount") == 0, "bucket not empty"))
step("delete_bucket", lambda: s3.delete_bucket(Bucket=b)["ResponseMetadata"]["HTTPStatusCode"])


def wrong_secret():
    bad = testenv.s3_client(env, secret="WRONG")
    try:
        bad.list_buckets()
    except bad.exceptions.ClientError as e:
        return f"rejected: {e.response['Error']['Code']}"
    raise AssertionError("a wrong secret was accepted (no signature check)")


step("wrong secret rejected", wrong_secret)
ok = sum(results.values())
print(f"SUMMARY s3 smoke: {ok} ok of {len(results)}")
sys.exit(0 if ok == len(results) else 1)
