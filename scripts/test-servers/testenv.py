"""Shared by wait_ready.py and the smoke tests: read the SKALD_TEST_* variables (from the
environment, or from an env.sh written by start.sh) and build boto3 clients from them."""
import os
import re
import sys

import boto3
from botocore.config import Config

_EXPORT = re.compile(r"^export ([A-Z0-9_]+)=(.*)$")


def load(env_file=None):
    """The SKALD_TEST_* settings: env_file's `export K=V` lines if given, else os.environ."""
    if env_file is None:
        env = dict(os.environ)
    else:
        env = {}
        with open(env_file) as f:
            for line in f:
                m = _EXPORT.match(line.strip())
                if m:
                    env[m.group(1)] = m.group(2).strip("'\"")
    missing = [k for k in ("SKALD_TEST_S3_ENDPOINT", "SKALD_TEST_DYNAMODB_ENDPOINT") if not env.get(k)]
    if missing:
        sys.exit(f"{', '.join(missing)} not set: source the env.sh printed by start.sh, or pass its path")
    return env


def env_from_argv():
    """load() with the env file named as the first argument, if any."""
    return load(sys.argv[1] if len(sys.argv) > 1 else None)


def s3_client(env, secret=None, **config):
    # SeaweedFS needs path-style addressing (http://host:port/bucket/key).
    return boto3.client(
        "s3",
        endpoint_url=env["SKALD_TEST_S3_ENDPOINT"],
        aws_access_key_id=env["SKALD_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=secret or env["SKALD_TEST_S3_SECRET_KEY"],
        region_name=env["SKALD_TEST_S3_REGION"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", **config),
    )


def dynamodb_client(env, **config):
    return boto3.client(
        "dynamodb",
        endpoint_url=env["SKALD_TEST_DYNAMODB_ENDPOINT"],
        aws_access_key_id=env["SKALD_TEST_DYNAMODB_ACCESS_KEY"],
        aws_secret_access_key=env["SKALD_TEST_DYNAMODB_SECRET_KEY"],
        region_name=env["SKALD_TEST_DYNAMODB_REGION"],
        config=Config(**config),
    )
