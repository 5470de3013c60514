"""A real S3-compatible store for the tests: SeaweedFS (built once by ``scripts/s3-testenv``)
in ``weed mini`` mode on free loopback ports, over a temporary directory, with three identities:
a writer that sets up the buckets, a reader the replicas use, and an outsider allowed nothing of
ours."""

from __future__ import annotations

import json
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
BUILD_SECONDS = 60 * 60  # a cold build on 2 cores, with room to spare
START_SECONDS = 60
BUCKET = "models"


def weed_binary() -> Path:
    """SeaweedFS's path: the last line ``scripts/s3-testenv`` prints (built once)."""
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


@dataclass
class S3Server:
    binary: Path
    work_dir: Path
    writer: Identity = field(default_factory=lambda: _identity("writer"))
    reader: Identity = field(default_factory=lambda: _identity("reader"))
    outsider: Identity = field(default_factory=lambda: _identity("outsider"))
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        config = self.work_dir / "s3.json"
        config.write_text(json.dumps({"identities": [
            self._grant("writer", self.writer, ["Admin", "Read", "List", "Write", "Tagging"]),
            self._grant("reader", self.reader, ["Read", "List"]),
            self._grant("outsider", self.outsider, ["Read:elsewhere", "List:elsewhere"]),
        ]}))  # fmt: skip
        (self.work_dir / "data").mkdir()
        self.log = self.work_dir / "weed.log"
        ports = {name: str(free_port()) for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc",
        )}  # fmt: skip
        flags = [f"-{name}={port}" for name, port in ports.items()] + [
            f"-dir={self.work_dir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}", f"-s3.config={config}", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
        ]  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(self.binary), "mini", *flags], stdout=out, stderr=subprocess.STDOUT
            )
        self._wait_until_serving()

    @staticmethod
    def _grant(name: str, who: Identity, actions: list[str]) -> dict[str, object]:
        keys = [{"accessKey": who.access_key, "secretKey": who.secret_key}]
        return {"name": name, "credentials": keys, "actions": actions}

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
        """Until the store takes a bucket: the master, volume, filer and gateway all up."""
        deadline = time.monotonic() + START_SECONDS
        client = self.client()
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"weed mini exited:\n{self.log.read_text()[-4000:]}")
            try:
                client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key="ready", Body=b"ready")
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(
                        f"weed mini did not serve S3 in {START_SECONDS}s ({exc}):\n"
                        f"{self.log.read_text()[-4000:]}"
                    ) from exc
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.process)
