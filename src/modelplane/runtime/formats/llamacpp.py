"""GGUF models through llama.cpp (``llama-cpp-python``), in the runtime's own process.

A chat or text-generation model becomes a :class:`~modelplane.runtime.generation.TextGenerator`;
an embedding model a :class:`~modelplane.runtime.formats.base.Predictor` with a ``text`` input, so
embeddings are batched and served over v2 as well as the OpenAI API.

Prompt cache: llama.cpp keeps the KV cache of the sequence it last ran, and the states of recent
sequences are kept in memory (``runtime.parameters.promptCacheMiB``, default 64; 0 turns it off).
A prompt that starts like a kept sequence (the next turn of a conversation, a shared system
prompt) restores that state and computes only the rest.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import random
from collections.abc import Iterator
from typing import Any

import numpy as np

from modelplane.errors import MissingExtraError, ModelLoadError
from modelplane.runtime.formats.base import (
    EMBEDDING_OUTPUT,
    TEXT_INPUT,
    TOKEN_COUNT_OUTPUT,
    LoadContext,
    Signature,
    text_embedding_signature,
    texts,
)
from modelplane.runtime.generation import ChatMessage, Sampling
from modelplane.runtime.types import Array

EXTRA = "llamacpp"
PLATFORM = "llamacpp"
DEFAULT_PROMPT_CACHE_MIB = 64


def _import() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingExtraError("format 'llamacpp'", EXTRA) from exc
    return llama_cpp


def _open(context: LoadContext, **options: Any) -> Any:  # a llama_cpp.Llama
    llama_cpp = _import()
    path = context.artifact
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            raise ModelLoadError(f"expected one .gguf file in {path}, found {len(found)}")
        path = found[0]
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise ModelLoadError(f"{path.name} is not a GGUF file (no GGUF magic at its start)")
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


class LlamaGenerator:
    """A GGUF language model; every call comes from the runtime's one model thread."""

    def __init__(self, context: LoadContext) -> None:
        self._llama = _open(context)
        self._vocab_is_end = _import().llama_vocab_is_eog
        cache_mib = context.whole_number("promptCacheMiB", DEFAULT_PROMPT_CACHE_MIB)
        from llama_cpp.llama_cache import LlamaRAMCache

        self._cache = LlamaRAMCache(capacity_bytes=cache_mib << 20) if cache_mib > 0 else None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._llama.metadata.get("tokenizer.chat_template")
        self._chat = (
            Jinja2ChatFormatter(
                template=template,
                eos_token=self._token_text(self._llama.token_eos()),
                bos_token=self._token_text(self._llama.token_bos()),
            )
            if template
            else None
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        text: bytes = self._llama.detokenize([token], special=True)
        return text.decode("utf-8", errors="replace")

    @property
    def context_length(self) -> int:
        return int(self._llama.n_ctx())

    @property
    def kv_cache_usage(self) -> float:
        return float(self._llama.n_tokens) / max(self.context_length, 1)

    def tokenize(self, text: str) -> list[int]:
        return list(self._llama.tokenize(text.encode(), add_bos=True, special=True))

    def chat_prompt(self, messages: list[ChatMessage]) -> str:
        if self._chat is None:
            raise ValueError("this model has no chat template; use /v1/completions")
        conversation: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        rendered = self._chat(messages=conversation)
        prompt: str = rendered.prompt
        bos = self._token_text(self._llama.token_bos())
        # tokenize() adds the start token itself; a template that writes it would double it.
        return prompt.removeprefix(bos) if bos else prompt

    def generate(self, prompt: list[int], sampling: Sampling) -> Iterator[str]:
        seed = sampling.seed if sampling.seed is not None else random.getrandbits(31)
        self._llama.set_seed(seed)
        self._restore_longest_prefix(prompt)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        previous = list(prompt)
        tokens = self._llama.generate(
            prompt,
            temp=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            reset=True,  # llama.cpp still reuses the cached prefix this prompt shares
        )
        try:
            for token in tokens:
                if self._vocab_is_end(self._llama._model.vocab, token):
                    return
                piece = self._llama.detokenize([token], prev_tokens=previous)
                previous.append(token)
                yield decoder.decode(piece)
        finally:
            tokens.close()
            if self._cache is not None:
                self._cache[previous] = self._llama.save_state()

    def _restore_longest_prefix(self, prompt: list[int]) -> None:
        """Load the kept state that shares the longest start with ``prompt``, if it shares more
        than what llama.cpp holds now; llama.cpp then evaluates only the rest."""
        if self._cache is None:
            return
        try:
            kept = self._cache[prompt]
        except KeyError:
            return
        longest = self._llama.longest_token_prefix
        if longest(kept.input_ids.tolist(), prompt) > longest(
            self._llama._input_ids.tolist(), prompt
        ):
            self._llama.load_state(kept)


class LlamaEmbedder:
    """A GGUF model that embeds text, as a predictor over a BYTES ``text`` input."""

    def __init__(self, context: LoadContext) -> None:
        llama_cpp = _import()
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
