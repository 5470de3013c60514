"""``modelplane init`` as a user runs it: what it writes, the git repository it starts, and the
clear refusals of bad input, after which nothing is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.processes import modelplane

FILES = [
    ".github/workflows/modelplane.yaml",
    ".gitlab-ci.yml",
    "README.md",
    "catalog-info.yaml",
    "evaluation/iris.jsonl",
    "evaluation/README.md",
    "models/iris.yaml",
]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(modelplane(*args), capture_output=True, text=True, timeout=60, cwd=cwd)


def git(repository: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repository), *args], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


def test_init_writes_a_repository_on_a_new_main_branch_with_nothing_committed(
    tmp_path: Path,
) -> None:
    result = run("init", "iris", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    repository = tmp_path / "iris"
    written = [p.relative_to(repository) for p in repository.rglob("*") if p.is_file()]
    assert sorted(p.as_posix() for p in written if p.parts[0] != ".git") == sorted(FILES)
    assert all(f"  {path}" in result.stdout for path in FILES)
    assert git(repository, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/main"
    assert git(repository, "rev-parse", "--verify", "--quiet", "HEAD").returncode != 0
    untracked = git(repository, "status", "--porcelain", "--untracked-files=all").stdout
    assert sorted(line.removeprefix("?? ") for line in untracked.splitlines()) == sorted(FILES)
    model = yaml.safe_load((repository / "models" / "iris.yaml").read_text())
    assert model["metadata"] == {"name": "iris", "namespace": "default",
                                 "labels": {"backstage.io/kubernetes-id": "iris"}}  # fmt: skip
    assert (model["spec"]["format"], model["spec"]["task"]) == ("onnx", "classification")
    assert model["spec"]["source"]["uri"] == "s3://CHANGE-ME/iris"
    assert "set spec.source.uri in models/iris.yaml (now s3://CHANGE-ME/iris)" in result.stdout
    assert "modelplane gitops add iris <repository URL> --path models" in result.stdout
    component = next(yaml.safe_load_all((repository / "catalog-info.yaml").read_text()))
    assert component["spec"]["owner"] == "group:default/default"


def test_init_takes_the_source_owner_namespace_and_directory_given(tmp_path: Path) -> None:
    source = "oci://registry.example.com/llm/tiny-chat:v1"
    result = run("init", "tiny-chat", "--format", "llamacpp", "--source", source,
                 "--owner", "group:default/llm-team", "-n", "llm", "--dir", "repos/chat",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    repository = tmp_path / "repos" / "chat"
    model = yaml.safe_load((repository / "models" / "tiny-chat.yaml").read_text())
    assert model["metadata"]["namespace"] == "llm"
    assert model["spec"]["source"] == {"uri": source}
    assert model["spec"]["task"] == "chat"  # what a language model serves first
    assert "set spec.source.uri" not in result.stdout
    entities = list(yaml.safe_load_all((repository / "catalog-info.yaml").read_text()))
    assert {e["spec"]["owner"] for e in entities} == {"group:default/llm-team"}
    assert entities[0]["metadata"]["annotations"]["modelplane.io/model"] == "llm/tiny-chat"


def test_init_never_writes_over_a_directory_that_holds_anything(tmp_path: Path) -> None:
    (tmp_path / "iris").mkdir()
    (tmp_path / "iris" / "notes.txt").write_text("mine\n")
    (tmp_path / "a-file").write_text("mine\n")
    for target in ("iris", "a-file"):
        result = run("init", "iris", "--dir", target, cwd=tmp_path)
        assert result.returncode == 1
        assert result.stderr.startswith(f"error: {target} exists and is not an empty directory")
        assert "hint: choose another --dir, or remove it first" in result.stderr
    assert sorted(p.name for p in (tmp_path / "iris").iterdir()) == ["notes.txt"]
    assert (tmp_path / "a-file").read_text() == "mine\n"
    (tmp_path / "empty").mkdir()
    assert run("init", "iris", "--dir", "empty", cwd=tmp_path).returncode == 0
    assert (tmp_path / "empty" / "models" / "iris.yaml").is_file()


def test_bad_input_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    refusals = {
        ("Iris",): "error: NAME 'Iris' is not a DNS label of at most 52 characters",
        ("iris", "-n", "ML_team"): "error: --namespace 'ML_team' is not a DNS label",
        ("iris", "--task", "chat"): "error: format 'onnx' cannot serve task 'chat'",
        ("iris", "--source", "ftp://host/iris.onnx"): "error: --source 'ftp://host/iris.onnx': "
        "scheme 'ftp' is not supported",
        ("iris", "--source", "file:///my models/x.onnx"): "is not a URI",
        ("iris", "--owner", "team a"): "error: --owner 'team a' is not a Backstage entity",
        ("iris", "--format", "tensorflow"): "tensorflow",
    }
    for args, message in refusals.items():
        result = run("init", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
