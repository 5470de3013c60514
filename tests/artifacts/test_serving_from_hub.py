"""End to end: ``modelplane serve`` serves all-MiniLM-L6-v2 from ``hf://`` with the hub cache
and ``HF_HUB_OFFLINE=1`` in its environment, as a replica on a machine without the hub would, and
answers embeddings through the official ``openai`` client; the token it was given shows nowhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openai
import pytest

from modelplane.artifacts import Limits, digest_of
from tests.artifacts.hubcache import REPO, TOKEN, CachedRepo, directory_files, minilm_directory
from tests.processes import RuntimeProcess

MANIFEST = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {{name: minilm}}
spec:
  source:
    uri: hf://{repo}@main
    sha256: "{sha256}"
  format: huggingface
  task: embedding
  resources: {{cpu: "1", memory: 1Gi}}
"""


@pytest.mark.slow
def test_minilm_from_the_hub_cache_answers_embeddings_of_its_dimension(tmp_path: Path) -> None:
    model = minilm_directory()
    cached = CachedRepo(tmp_path / "hub", REPO)
    cached.commit(directory_files(model), "main")
    manifest = tmp_path / "minilm.yaml"
    manifest.write_text(MANIFEST.format(repo=REPO, sha256=digest_of(model, Limits(), "minilm")))
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cached.cache), "HF_TOKEN": TOKEN}
    runtime = RuntimeProcess(["-f", str(manifest)], tmp_path / "serve.log", env=env)
    try:
        runtime.wait_ready()
        with openai.OpenAI(base_url=f"{runtime.url}/v1", api_key="unused", max_retries=0) as client:
            answer = client.embeddings.create(
                model="minilm", input=["A man is eating food.", "A man is eating bread."]
            )
    finally:
        runtime.terminate()
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (2, 384)
    assert vectors[0] @ vectors[1] > 0.6  # the real model: related sentences are near
    fetched = list((tmp_path / "cache" / "artifacts" / "entries").glob("*/all-MiniLM-L6-v2"))
    assert len(fetched) == 1, "the artifact is in modelplane's cache under its digest"
    assert TOKEN not in runtime.output()
