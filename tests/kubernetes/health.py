"""The GitOps health checks shipped in deploy/, run as their tools run them: the Argo CD Lua
script in a real Lua interpreter, the Flux CEL expressions in a CEL interpreter."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import celpy
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _lua(value: Any) -> str:
    """A JSON value as a Lua table constructor (Argo CD hands the script such a table)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    # JSON's string escapes are Lua's too, but for \uXXXX: keep non-ASCII text as UTF-8 bytes.
    return json.dumps(value, ensure_ascii=False)


def argocd(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD's health.lua for Model says."""
    lua = shutil.which("lua5.4") or shutil.which("lua")
    if lua is None:
        raise AssertionError(
            "no Lua interpreter: run ./scripts/test as root (Debian package lua5.4)"
        )
    program = (
        f"obj = {_lua(obj)}\n"
        f"local hs = dofile({json.dumps(str(DEPLOY / 'argocd' / 'health.lua'))})\n"
        "io.write(hs.status, '\\n', hs.message or '')\n"
    )
    done = subprocess.run([lua, "-"], input=program, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    status, _, message = done.stdout.partition("\n")
    return status, message


def flux(obj: dict[str, Any]) -> str:
    """Current, Failed or InProgress, from deploy/flux's healthCheckExprs, evaluated in Flux's
    order: inProgress, then failed, then current."""
    checks = yaml.safe_load((DEPLOY / "flux" / "health-check-exprs.yaml").read_text())
    check = next(c for c in checks if c["kind"] == obj["kind"])
    env = celpy.Environment()
    activation = {k: celpy.json_to_cel(v) for k, v in obj.items()}
    for key, verdict in (
        ("inProgress", "InProgress"),
        ("failed", "Failed"),
        ("current", "Current"),
    ):
        if key in check and env.program(env.compile(check[key])).evaluate(activation):
            return verdict
    return "InProgress"
