"""A GitOps source's repository, read with the ``git`` command: fetch a branch, and read the
manifest files of a directory at exactly one commit (never the working tree, which a later
fetch could change under a sync).

The repository is a bare mirror in the state directory, so any URL ``git`` can fetch works:
a local path, ``file://``, ``git://``, ``https://``, ``ssh://``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePosixPath

from modelplane.control.gitops import MANIFEST_SUFFIXES
from modelplane.errors import ModelplaneError

GIT_SECONDS = 120


class GitError(ModelplaneError):
    """git could not fetch or read the source."""


def absolute_if_local(url: str) -> str:
    """A local path made absolute (git may run elsewhere, the platform in another directory);
    a URL as it is."""
    return str(Path(url).resolve()) if Path(url).exists() else url


class GitMirror:
    def __init__(self, url: str, directory: Path) -> None:
        if not url or url.startswith("-"):
            raise GitError(f"git source {url!r} is not a path or URL")
        self.url, self.directory = url, directory

    @staticmethod
    def check_branch(branch: str) -> None:
        """A branch name git accepts (no ``..``, ``:``, leading ``-``, ...), or GitError."""
        done = subprocess.run(
            ["git", "check-ref-format", "--branch", branch],
            capture_output=True, text=True, timeout=GIT_SECONDS, check=False,
        )  # fmt: skip
        if done.returncode != 0 or branch.startswith("-"):
            raise GitError(f"{branch!r} is not a valid branch name")

    def fetch(self, branch: str) -> str:
        """Fetch ``branch`` and return its commit."""
        if not (self.directory / "HEAD").exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            self._git("init", "--bare", "--quiet", ".")
        ref = f"refs/heads/{branch}"
        fetch = ("fetch", "--quiet", "--no-tags", "--force", "--end-of-options")
        self._git(*fetch, self.url, f"+{ref}:{ref}")
        return self._git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()

    def commit_time(self, commit: str) -> str:
        """When ``commit`` was made (its committer date, RFC 3339)."""
        return self._git("show", "--no-patch", "--format=%cI", commit).strip()

    def files(self, commit: str, path: str) -> dict[str, str]:
        """Path -> text of every manifest file under ``path`` at ``commit``."""
        prefix = str(PurePosixPath(path.strip("/") or "."))
        listed = self._git("ls-tree", "-r", "-z", commit, "--", prefix)
        blobs: dict[str, str] = {}  # name -> object id
        for entry in filter(None, listed.split("\0")):
            info, _, name = entry.partition("\t")
            _mode, kind, object_id = info.split()
            if kind == "blob" and name.endswith(MANIFEST_SUFFIXES):
                blobs[name] = object_id
        if not blobs:
            return {}
        # Every file in one git process: `cat-file --batch` answers "<id> blob <size>\n<bytes>\n"
        # per id asked, in order.
        asked = "".join(f"{object_id}\n" for object_id in blobs.values()).encode()
        out = run_git(self.directory, ("cat-file", "--batch"), self.url, None, asked)
        found, at = {}, 0
        for name in blobs:
            header_end = out.index(b"\n", at)
            size = int(out[at:header_end].split()[2])
            body = out[header_end + 1 : header_end + 1 + size]
            found[name] = body.decode(errors="replace")  # not UTF-8: a YAML error names the file
            at = header_end + 1 + size + 1
        return found

    def _git(self, *args: str) -> str:
        return git(self.directory, *args, source=self.url)


def git(directory: Path, *args: str, source: str = "", env: dict[str, str] | None = None) -> str:
    """``git -C directory args``: its output, or GitError with git's last word. It never waits
    for a person: no terminal prompt, ssh in batch mode."""
    return run_git(directory, args, source, env).decode(errors="replace")


def run_git(
    directory: Path,
    args: tuple[str, ...],
    source: str = "",
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> bytes:
    """``git`` as ``git`` above describes it, with ``stdin`` given to it; its output as bytes."""
    quiet = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
    }
    of = f" of {source}" if source else ""
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True, timeout=GIT_SECONDS, check=False,
            input=stdin if stdin is not None else b"",
            env={**os.environ, **quiet, **(env or {})},
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]}{of} took over {GIT_SECONDS}s") from exc
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]}{of}: {said[-1] if said else done.returncode}")
    return done.stdout
