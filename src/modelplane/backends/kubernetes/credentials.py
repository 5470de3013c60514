"""``source.credentials`` on a cluster, for the operator's own use: resolving a new revision's
moving reference needs the same secret the pods' fetch step gets. The Secret's keys are written,
for as long as one resolution runs, to a private temporary directory laid out as the kubelet
mounts a Secret, and read back the one way both paths share
(``artifacts.credentials.credentials_from_directory``)."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from lightkube import AsyncClient
from lightkube.resources.core_v1 import Secret

from modelplane.api import Model
from modelplane.artifacts.credentials import credentials_from_directory
from modelplane.backends.kubernetes.writing import translated
from modelplane.backends.pinning import Credentials
from modelplane.errors import ArtifactAccessDeniedError, KubernetesError


def secret_credentials(client: AsyncClient) -> Credentials:
    @asynccontextmanager
    async def credentials(model: Model) -> AsyncIterator[dict[str, str]]:
        given = model.spec.source.credentials
        if given is None:
            yield {}
            return
        namespace = model.metadata.namespace
        try:
            async with translated(f"reading the credentials Secret {namespace}/{given.secret}"):
                secret = await client.get(Secret, given.secret, namespace=namespace)
        except KubernetesError as exc:
            if exc.code not in (403, 404):
                raise  # the server failing, or out of reach: the pass is tried again
            raise ArtifactAccessDeniedError(_unreadable(given.secret, namespace, exc.code)) from exc
        with tempfile.TemporaryDirectory(prefix="modelplane-secret-") as scratch:
            mounted = Path(scratch) / "secret"
            mounted.mkdir(mode=0o700)
            for key, value in (secret.data or {}).items():
                (mounted / key).write_bytes(base64.b64decode(value))
            yield credentials_from_directory(mounted, Path(scratch))

    return credentials


def _unreadable(name: str, namespace: str, code: int) -> str:
    if code == 403:
        # The operator may read no Secret unless a namespace's owner lets it read that one.
        return (
            f"the operator may not read the credentials Secret {name!r} in namespace "
            f"{namespace!r} (needed to resolve the source's tag, alias or branch); let it: "
            f"kubectl -n {namespace} create role modelplane-credentials --verb=get "
            f"--resource=secrets --resource-name={name} && kubectl -n {namespace} create "
            f"rolebinding modelplane-credentials --role=modelplane-credentials "
            f"--serviceaccount=<operator namespace>:modelplane-operator"
        )
    return f"the credentials Secret {name!r} does not exist in namespace {namespace!r}"
