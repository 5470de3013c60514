"""A real MLflow tracking server for the ``models:/`` tests: ``mlflow server`` from the venv
``scripts/mlflow-testenv`` builds once, on a free loopback port, its registry in SQLite under a
temporary directory, its artifacts in the tests' S3 store (``s3server.py``), and MLflow's
basic-auth app in front: an admin who registers models and a reader the replicas use.

Two ways MLflow keeps artifacts, one server each: ``proxied`` (``--artifacts-destination``: clients
reach the store through the server, ``mlflow-artifacts:/`` locations) and ``direct``
(``--default-artifact-root s3://... --no-serve-artifacts``: clients reach S3 themselves).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.artifacts.s3server import BUCKET, S3Server
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD_SECONDS = 20 * 60  # a cold venv on 2 cores, with room to spare
START_SECONDS = 180  # the server imports much of MLflow before it answers
REGISTER_SECONDS = 300
STOP_SECONDS = 20
READER = "modelplane-reader"
_OURS = ("MLFLOW_", "AWS_")  # what the servers and clients get from us, never from the caller


def mlflow_venv() -> Path:
    """The venv's path: the last line ``scripts/mlflow-testenv`` prints (built once)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "mlflow-testenv")],
        capture_output=True, text=True, timeout=BUILD_SECONDS, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"scripts/mlflow-testenv failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}


@dataclass
class MlflowServer:
    venv: Path
    work_dir: Path
    s3: S3Server
    proxied: bool = True
    port: int = field(default_factory=free_port)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    reader_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    def __post_init__(self) -> None:
        self.prefix = f"mlflow-{'proxied' if self.proxied else 'direct'}"
        self.log = self.work_dir / "mlflow-server.log"
        self.process = self._start()
        try:
            self._wait_until_serving()
            self._add_reader()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self) -> subprocess.Popen[bytes]:
        store = f"s3://{BUCKET}/{self.prefix}"
        artifacts = (
            ["--artifacts-destination", store] if self.proxied
            else ["--default-artifact-root", store, "--no-serve-artifacts"]
        )  # fmt: skip
        config = self.work_dir / "basic_auth.ini"
        config.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{self.work_dir / 'auth.db'}\nadmin_username = admin\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        env = {
            **self.store_env(self.s3.writer.access_key, self.s3.writer.secret_key),
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            # Background jobs (prompt optimisation, scorers) are two more processes for nothing.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        command = [
            str(self.venv / "bin" / "mlflow"), "server", "--app-name", "basic-auth",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.work_dir / 'mlflow.db'}", *artifacts,
        ]  # fmt: skip
        with self.log.open("wb") as out:
            # Its own process group: `mlflow server` runs uvicorn as a child, stopped with it.
            return subprocess.Popen(
                command, cwd=self.work_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def store_env(self, access_key: str, secret_key: str) -> dict[str, str]:
        """A clean environment that reaches the S3 store with these keys, as MLflow's does."""
        return {
            **_clean_environment(),
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint,
        }

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"mlflow server exited:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"mlflow server silent after {START_SECONDS}s:\n{self.output()}"
                )
            time.sleep(0.2)

    def _add_reader(self) -> None:
        """A user with the default permission (READ), created by the admin."""
        reply = httpx.post(
            f"{self.url}/api/2.0/mlflow/users/create",
            json={"username": READER, "password": self.reader_password},
            auth=("admin", self.admin_password), timeout=30,
        )  # fmt: skip
        assert reply.status_code == 200, reply.text

    def reader_env(self) -> dict[str, str]:
        """What a replica's environment holds to fetch models: the reader's login, and for the
        direct store the S3 reader's keys."""
        env = {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": READER,
            "MLFLOW_TRACKING_PASSWORD": self.reader_password,
        }
        if not self.proxied:
            env |= self.s3.reader.env(self.s3.endpoint) | {
                "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint
            }
        return env

    def register(self, *steps: dict[str, str]) -> list[str]:
        """The versions the steps of ``mlflow_register.py`` made, run by MLflow's own client."""
        env = {
            **self.store_env(self.s3.writer.access_key, self.s3.writer.secret_key),
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": self.admin_password,
        }
        script = Path(__file__).with_name("mlflow_register.py")
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), str(script), json.dumps(steps)],
            env=env, cwd=self.work_dir, capture_output=True, text=True,
            timeout=REGISTER_SECONDS, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"registering {steps} failed:\n{done.stderr[-4000:]}")
        versions: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
        return versions

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it has not exited in time."""
        group = self.process.pid  # its own session: the group's id is its pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
            try:
                self.process.wait(timeout=STOP_SECONDS)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)  # a child that outlived its parent
                return
            except subprocess.TimeoutExpired:
                continue
