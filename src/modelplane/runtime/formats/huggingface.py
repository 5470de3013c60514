"""Hugging Face transformers models from a local directory, on CPU or a GPU.

A chat or text-generation model becomes a :class:`~modelplane.runtime.generation.TextGenerator`
that decodes token by token with the model's KV cache, so each token reaches the client as it is
made and a client that leaves stops the loop; sampling follows the request (temperature, top_p,
seed). An embedding model (a sentence-transformers directory such as all-MiniLM-L6-v2) becomes a
predictor with a ``text`` input: mean pooling over the tokens, then unit length.

Nothing is downloaded: the artifact is a directory (``config.json``, weights, tokenizer).
``runtime.parameters.device`` picks ``cpu``, ``cuda`` or ``auto`` (the default: a GPU if there is
one); ``runtime.parameters.dtype`` picks ``float32``, ``float16`` or ``bfloat16``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
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

EXTRA = "huggingface"
PLATFORM = "huggingface"
EMBEDDING_MAX_TOKENS = 256  # all-MiniLM-L6-v2's own limit; longer texts are cut, as it does


def _import() -> tuple[Any, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub at run time
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtraError("format 'huggingface'", EXTRA) from exc
    library: Any = transformers  # used untyped: its annotations cover little of what we call
    library.utils.logging.disable_progress_bar()  # a bar per load is noise in replica logs
    return torch, library


def _directory(context: LoadContext) -> Path:
    path = context.artifact
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{path} is not a Hugging Face model directory (it needs a config.json, weights "
            f"and a tokenizer)"
        )
    return path


def _placement(context: LoadContext, torch: Any) -> tuple[Any, Any]:
    device = context.parameters.get("device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("runtime.parameters.device is cuda, but no GPU is visible")
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    name = context.parameters.get("dtype", "float32")
    if name not in dtypes:
        raise ModelLoadError(f"runtime.parameters.dtype must be one of {sorted(dtypes)}")
    torch.set_num_threads(context.cpu_threads)
    return torch.device(device), dtypes[name]


def _load(context: LoadContext, kind: str) -> tuple[Any, Any, Any, Any]:
    """torch, the device, the tokenizer and the model (of ``transformers.<kind>``), in eval mode."""
    torch, transformers = _import()
    path = _directory(context)
    device, dtype = _placement(context, torch)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = getattr(transformers, kind).from_pretrained(
            path, local_files_only=True, dtype=dtype
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"transformers cannot load {path.name}: {exc}") from exc
    return torch, device, tokenizer, model.to(device).eval()


class HuggingFaceGenerator:
    """A causal language model; every call comes from the runtime's one model thread."""

    def __init__(self, context: LoadContext) -> None:
        self._torch, self.device, self._tokenizer, self._model = _load(
            context, "AutoModelForCausalLM"
        )
        ends = self._model.generation_config.eos_token_id
        if ends is None:
            ends = self._tokenizer.eos_token_id
        self._ends = set(ends if isinstance(ends, list) else [ends]) - {None}
        trained: Any = getattr(self._model.config, "max_position_embeddings", None) or 2048
        self._context = context.context_length or int(trained)

    @property
    def context_length(self) -> int:
        return self._context

    def tokenize(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=True)["input_ids"])

    def chat_prompt(self, messages: list[ChatMessage]) -> str:
        if not self._tokenizer.chat_template:
            raise ValueError("this model has no chat template; use /v1/completions")
        prompt: str = self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        return prompt

    def generate(self, prompt: list[int], sampling: Sampling) -> Iterator[str]:
        torch = self._torch
        generator = torch.Generator(device=self.device)
        if sampling.seed is not None:
            generator.manual_seed(sampling.seed)
        else:
            generator.seed()
        detokenizer = _Detokenizer(self._tokenizer)
        inputs = torch.tensor([prompt], device=self.device)
        past = None
        with torch.inference_mode():
            while True:
                out = self._model(input_ids=inputs, past_key_values=past, use_cache=True)
                past = out.past_key_values
                token = _sample(torch, out.logits[0, -1], sampling, generator)
                if token in self._ends:
                    return
                yield detokenizer.add(token)
                inputs = torch.tensor([[token]], device=self.device)


def _sample(torch: Any, logits: Any, sampling: Sampling, generator: Any) -> int:
    """The next token: greedy at temperature 0, else sampled within the top_p nucleus."""
    if sampling.temperature == 0:
        return int(torch.argmax(logits))
    probabilities = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        ordered, indices = torch.sort(probabilities, descending=True)
        outside = torch.cumsum(ordered, dim=-1) - ordered > sampling.top_p
        ordered[outside] = 0.0
        choice = torch.multinomial(ordered / ordered.sum(), 1, generator=generator)
        return int(indices[choice])
    return int(torch.multinomial(probabilities, 1, generator=generator))


class _Detokenizer:
    """Text of each new token: decodes a short window so that characters made of several
    tokens come out whole, once complete."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the window
        self._read = 0  # end of what was already released

    def add(self, token: int) -> str:
        self._ids.append(token)
        decode = self._tokenizer.decode
        before = decode(self._ids[self._prefix : self._read], skip_special_tokens=True)
        after = decode(self._ids[self._prefix :], skip_special_tokens=True)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""  # a character still incomplete
        self._prefix, self._read = self._read, len(self._ids)
        return str(after[len(before) :])


class HuggingFaceEmbedder:
    """A sentence-embedding model as a predictor over a BYTES ``text`` input."""

    def __init__(self, context: LoadContext) -> None:
        self._torch, self.device, self._tokenizer, self._model = _load(context, "AutoModel")
        self._signature = text_embedding_signature(PLATFORM, int(self._model.config.hidden_size))

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: dict[str, Array], outputs: frozenset[str]) -> dict[str, Array]:
        torch = self._torch
        encoded = self._tokenizer(
            texts(inputs[TEXT_INPUT]),
            padding=True,
            truncation=True,
            max_length=EMBEDDING_MAX_TOKENS,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            hidden = self._model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return {
            EMBEDDING_OUTPUT: vectors.cpu().numpy().astype(np.float32),
            TOKEN_COUNT_OUTPUT: encoded["attention_mask"].sum(dim=1).cpu().numpy().astype(np.int64),
        }
