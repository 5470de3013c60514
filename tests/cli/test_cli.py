"""The ``modelplane`` command as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import yaml

from tests.processes import free_port, modelplane


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(modelplane(*args), capture_output=True, text=True, timeout=60, cwd=cwd)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("modelplane ")


def test_validate_prints_revision_digests(iris_dir: Path) -> None:
    result = run("validate", str(iris_dir / "iris.yaml"), str(iris_dir / "iris-sklearn.yaml"))
    assert result.returncode == 0, result.stderr
    assert "default/iris is valid (revision digest " in result.stdout
    assert "default/iris-sklearn is valid" in result.stdout


def test_validate_takes_directories_of_manifests_as_a_git_source_reads_them(
    iris_dir: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    (models / "team").mkdir(parents=True)
    (models / "iris.yaml").write_text((iris_dir / "iris.yaml").read_text())
    (models / "team" / "sklearn.yml").write_text((iris_dir / "iris-sklearn.yaml").read_text())
    (models / "notes.txt").write_text("not a manifest\n")
    result = run("validate", "-f", str(models), "--file", str(iris_dir / "iris.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" is valid (revision digest ") == 3
    assert f"{models / 'team' / 'sklearn.yml'}: default/iris-sklearn is valid" in result.stdout
    (tmp_path / "empty").mkdir()
    nothing_there = run("validate", "-f", str(tmp_path / "empty"))
    assert nothing_there.returncode == 1
    assert nothing_there.stderr.startswith(f"error: {tmp_path / 'empty'} holds no manifest")
    nothing_given = run("validate")
    assert nothing_given.returncode == 2
    assert "hint: modelplane validate -f models/" in nothing_given.stderr


def test_invalid_manifest_is_one_clear_error_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: modelplane.io/v1alpha1\nkind: Model\nmetadata: {name: iris}\n"
        "spec: {source: {uri: 'file://m.onnx'}, format: onxx, task: classification}\n"
    )
    result = run("validate", str(bad))
    assert result.returncode == 4
    assert result.stderr.startswith(f"error: {bad}: invalid Model 'iris'")
    assert "spec.format: Input should be" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run("--debug", "validate", str(bad))
    assert "Traceback" in debug.stderr


def test_missing_file_and_usage_errors(tmp_path: Path) -> None:
    missing = run("validate", str(tmp_path / "absent.yaml"))
    assert missing.returncode == 4
    assert "cannot read" in missing.stderr
    nothing = run("serve")
    assert nothing.returncode == 2
    assert "error: nothing to serve" in nothing.stderr
    assert "hint: modelplane serve -f model.yaml" in nothing.stderr
    unknown = run("serve", "--uri", "file://m.onnx", "--format", "tensorflow")
    assert unknown.returncode == 2
    assert "tensorflow" in unknown.stderr


def test_serve_picks_a_model_from_a_multi_document_file(tmp_path: Path, iris_dir: Path) -> None:
    both = tmp_path / "both.yaml"
    both.write_text(
        (iris_dir / "iris.yaml").read_text()
        + "---\n"
        + (iris_dir / "iris-sklearn.yaml").read_text()
    )
    result = run("serve", "-f", str(both))
    assert result.returncode == 2
    assert "holds 2 Models (iris, iris-sklearn)" in result.stderr
    assert "hint: pick one with --name" in result.stderr


def test_schema_and_crd_are_printable() -> None:
    schema = json.loads(run("schema").stdout)
    assert schema["properties"]["kind"]["const"] == "Model"
    crd = yaml.safe_load(run("crd").stdout)
    assert crd["kind"] == "CustomResourceDefinition"


def test_up_on_a_port_in_use_says_which_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for option, other in (("--port", "--gateway-port"), ("--gateway-port", "--port")):
            result = run("up", "--state-dir", str(tmp_path / "state"), option, str(port),
                         other, str(free_port()))  # fmt: skip
            assert result.returncode == 1
            assert result.stderr.startswith(
                f"error: {option} {port}: cannot listen on 127.0.0.1 port {port}: "
            ), result.stderr
            assert f"choose another port with {option}" in result.stderr
            assert "Traceback" not in result.stderr
            assert "modelplane is up" not in result.stdout
            assert not (tmp_path / "state").exists()
    # One port for both would leave one of them unreachable behind a banner saying all is up.
    both = free_port()
    result = run("up", "--state-dir", str(tmp_path / "state"), "--port", str(both),
                 "--gateway-port", str(both))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --port and --gateway-port are both {both}")


def test_operator_options_that_cannot_work_are_refused_before_it_starts() -> None:
    for picker in ("{pool}-epp", "{pool}-epp:http", "{revision}-epp:9002", ":9002", "e:70000"):
        refused = run("operator", "--endpoint-picker", picker)
        assert refused.returncode == 2, refused.stderr
        assert f"--endpoint-picker {picker!r} is not NAME:PORT" in refused.stderr
    parent = run("operator", "--route-parent", "edge")
    assert parent.returncode == 2
    assert "--route-parent 'edge' is not NAMESPACE/NAME" in parent.stderr
