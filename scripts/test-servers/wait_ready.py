#!/usr/bin/env python3
"""Wait (bounded) until both test servers answer real signed requests, then create the S3 bucket.

Usage: wait_ready.py ENV_FILE S3_PID DYNAMODB_PID TIMEOUT_SECONDS
  S3: signed ListBuckets succeeds, then CreateBucket $SKALD_TEST_S3_BUCKET and HeadBucket.
  DynamoDB: signed ListTables succeeds.
Gives up early when a server process has exited. Exit status 0 when both are ready, else 1
(start.sh then prints the logs and stops what it started).
"""
import sys
import time

from botocore.exceptions import BotoCoreError, ClientError

import testenv


def running(pid: int) -> bool:
    # An exited child that its parent has not reaped yet (a zombie) has an empty cmdline.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return bool(f.read())
    except OSError:
        return False


def main() -> int:
    env_file, s3_pid, ddb_pid, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    env = testenv.load(env_file)
    quick = dict(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1})
    s3 = testenv.s3_client(env, **quick)
    ddb = testenv.dynamodb_client(env, **quick)
    bucket = env["SKALD_TEST_S3_BUCKET"]

    def s3_ready():
        s3.list_buckets()
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        s3.head_bucket(Bucket=bucket)

    def ddb_ready():
        if "TableNames" not in ddb.list_tables():
            raise RuntimeError("ListTables answer without TableNames")

    pending = {"S3 (SeaweedFS)": (s3_pid, s3_ready), "DynamoDB Local": (ddb_pid, ddb_ready)}
    last_error = {}
    start = time.monotonic()
    while pending and time.monotonic() - start < timeout:
        for name, (pid, check) in list(pending.items()):
            if not running(pid):
                print(f"wait_ready: {name} (pid {pid}) exited during start-up", file=sys.stderr)
                return 1
            try:
                check()
            except (BotoCoreError, ClientError, RuntimeError, OSError) as e:
                last_error[name] = f"{type(e).__name__}: {e}"
                continue
            print(f"wait_ready: {name} ready after {time.monotonic() - start:.1f}s", file=sys.stderr)
            del pending[name]
        if pending:
            time.sleep(0.2)
    for name in pending:
        print(f"wait_ready: {name} not ready after {timeout:g}s; last error: {last_error.get(name)}",
              file=sys.stderr)
    return 1 if pending else 0


if __name__ == "__main__":
    sys.exit(main())
