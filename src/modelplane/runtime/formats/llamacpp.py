"""GGUF models through llama.cpp (``llama-cpp-python``), in the runtime's own process.

A chat or text-generation model becomes a batched generator with parallel slots
(``llamacpp_slots.py``, on llama.cpp's C API); an embedding model a
:class:`~modelplane.runtime.formats.base.Predictor` with a ``text`` input, so embeddings are batched
and served over v2 as well as the OpenAI API.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from modelplane.errors import ModelLoadError
from modelplane.runtime.formats.base import (
    EMBEDDING_OUTPUT,
    TEXT_INPUT,
    TOKEN_COUNT_OUTPUT,
    LoadContext,
    Signature,
    text_embedding_signature,
    texts,
)
from modelplane.runtime.formats.llamacpp_model import gguf_file, import_llama
from modelplane.runtime.types import Array

PLATFORM = "llamacpp"


def _open(context: LoadContext, **options: Any) -> Any:  # a llama_cpp.Llama
    llama_cpp = import_llama()
    path = gguf_file(context)
    n_ctx = context.context_length or 0  # 0: the model's own
    try:
        # llama.cpp prints its load log to stderr; it is noise unless loading fails.
        with contextlib.redirect_stderr(io.StringIO()):
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=context.cpu_threads,
                n_threads_batch=context.cpu_threads,
                verbose=False,
                **options,
            )
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"llama.cpp cannot load {path.name}: {exc}") from exc


class LlamaEmbedder:
    """A GGUF model that embeds text, as a predictor over a BYTES ``text`` input."""

    def __init__(self, context: LoadContext) -> None:
        llama_cpp = import_llama()
        self._llama = _open(context, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        self._signature = text_embedding_signature(PLATFORM, int(self._llama.n_embd()))

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str]) -> dict[str, Array]:
        given = texts(inputs[TEXT_INPUT])
        # Like sentence-transformers, a text longer than the context is cut to fit, not refused:
        # one long text must not fail the other requests batched with it.
        context = int(self._llama.n_ctx())
        counts = [min(len(self._llama.tokenize(t.encode())), context) for t in given]
        vectors = self._llama.embed(given, normalize=True, truncate=True)
        return {
            EMBEDDING_OUTPUT: np.asarray(vectors, dtype=np.float32),
            TOKEN_COUNT_OUTPUT: np.asarray(counts, dtype=np.int64),
        }
