"""A real S3-compatible store for the tests: Versity S3 Gateway (built once by
``scripts/s3-testenv``) with its POSIX backend over a temporary directory, on a free loopback
port. Its internal IAM holds three accounts besides root: a writer that owns the bucket, a reader
the replicas use (the bucket's policy lets it list and read, nothing more), and an outsider the
policy does not name."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from mypy_boto3_s3 import S3Client

from tests.processes import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
BUILD_SECONDS = 20 * 60  # a cold build on 2 cores, with room to spare
START_SECONDS = 60
ADMIN_SECONDS = 30
BUCKET = "models"


def versitygw_binary() -> Path:
    """The gateway's path: the last line ``scripts/s3-testenv`` prints (built once)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "s3-testenv")],
        capture_output=True, text=True, timeout=BUILD_SECONDS, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"scripts/s3-testenv failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Identity:
    access_key: str
    secret_key: str

    def env(self, endpoint: str) -> dict[str, str]:
        """What a replica's environment holds to reach the store as this identity."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
        }


def _identity(name: str) -> Identity:
    return Identity(f"{name}-{secrets.token_hex(4)}", secrets.token_urlsafe(24))


def _allow(who: Identity, actions: list[str]) -> dict[str, object]:
    """A bucket policy statement: ``who`` may do ``actions`` on the bucket and its objects."""
    resources = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
    principal = {"AWS": [who.access_key]}
    return {"Effect": "Allow", "Principal": principal, "Action": actions, "Resource": resources}


@dataclass
class S3Server:
    binary: Path
    work_dir: Path
    writer: Identity = field(default_factory=lambda: _identity("writer"))
    reader: Identity = field(default_factory=lambda: _identity("reader"))
    outsider: Identity = field(default_factory=lambda: _identity("outsider"))
    root: Identity = field(default_factory=lambda: _identity("root"))
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        for name in ("data", "iam"):
            (self.work_dir / name).mkdir()
        self.log = self.work_dir / "versitygw.log"
        self.process = self._start()
        try:
            self._wait_until_serving()
            self._set_up_accounts_and_bucket()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> subprocess.Popen[bytes]:
        """The gateway with root's keys in its environment (not on its command line)."""
        flags = [
            f"--port=127.0.0.1:{self.port}", f"--iam-dir={self.work_dir / 'iam'}", "--quiet",
            "posix", str(self.work_dir / "data"),
        ]  # fmt: skip
        root = {"ROOT_ACCESS_KEY": self.root.access_key, "ROOT_SECRET_KEY": self.root.secret_key}
        with self.log.open("wb") as out:
            return subprocess.Popen(
                [str(self.binary), *flags], env={**os.environ, **root},
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, who: Identity | None = None, endpoint: str | None = None) -> S3Client:
        who = who or self.writer
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1",
            aws_access_key_id=who.access_key, aws_secret_access_key=who.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
        )  # fmt: skip

    def _wait_until_serving(self) -> None:
        """Until the gateway answers root's ListBuckets."""
        deadline = time.monotonic() + START_SECONDS
        client = self.client(self.root)
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"versitygw exited:\n{self.output()}")
            try:
                client.list_buckets()
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"versitygw did not serve S3 in {START_SECONDS}s ({exc}):\n{self.output()}"
                    ) from exc
            time.sleep(0.1)

    def _set_up_accounts_and_bucket(self) -> None:
        """The accounts made through the admin API, the bucket made by its writer, and a policy
        that names who may do what in it (with a policy, the owner too needs a statement)."""
        self._admin("create-user", "--access", self.writer.access_key,
                    "--secret", self.writer.secret_key, "--role", "userplus")  # fmt: skip
        for who in (self.reader, self.outsider):
            self._admin("create-user", "--access", who.access_key,
                        "--secret", who.secret_key, "--role", "user")  # fmt: skip
        writer = self.client(self.writer)
        writer.create_bucket(Bucket=BUCKET)
        statements = [_allow(self.writer, ["s3:*"]),
                      _allow(self.reader, ["s3:GetObject", "s3:ListBucket"])]  # fmt: skip
        policy = {"Version": "2012-10-17", "Statement": statements}
        writer.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))

    def _admin(self, *args: str) -> None:
        """``versitygw admin ARGS`` as root, against this gateway's admin API (on its S3 port)."""
        admin = {
            "ADMIN_ACCESS_KEY": self.root.access_key, "ADMIN_SECRET_KEY": self.root.secret_key,
            "ADMIN_ENDPOINT_URL": self.endpoint,
        }  # fmt: skip
        done = subprocess.run(
            [str(self.binary), "admin", *args], env={**os.environ, **admin},
            capture_output=True, text=True, timeout=ADMIN_SECONDS, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"versitygw admin {args[0]} failed: {done.stderr}{done.stdout}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        stop_process(self.process)
