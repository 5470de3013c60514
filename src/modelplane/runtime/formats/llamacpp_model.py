"""llama.cpp's model and vocabulary through its C API (``llama_cpp``'s low-level binding): the
GGUF file found and loaded, a context split into sequences, tokens to text and back, the chat
template, each request's sampling chain, and a sequence's state saved and restored.

Used by the batched generator (``llamacpp_slots.py``); the embedder keeps the library's own
``Llama`` class (``llamacpp.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
from pathlib import Path
from typing import Any

from modelplane.errors import MissingExtraError, ModelLoadError
from modelplane.runtime.formats.base import LoadContext
from modelplane.runtime.generation import ChatMessage, Sampling

EXTRA = "llamacpp"


def import_llama() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingExtraError("format 'llamacpp'", EXTRA) from exc
    # Its log (every load prints pages of it) goes to stderr through this logger; errors only.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    return llama_cpp


def gguf_file(context: LoadContext) -> Path:
    """The artifact's GGUF file: the artifact itself, or the one ``.gguf`` in its directory."""
    path = context.artifact
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) != 1:
            raise ModelLoadError(f"expected one .gguf file in {path}, found {len(found)}")
        path = found[0]
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise ModelLoadError(f"{path.name} is not a GGUF file (no GGUF magic at its start)")
    return path


class LlamaModel:
    """A loaded GGUF model and its vocabulary."""

    def __init__(self, context: LoadContext) -> None:
        self.llama = llama = import_llama()
        path = gguf_file(context)
        self.name = path.name
        llama.llama_backend_init()
        with contextlib.redirect_stderr(io.StringIO()):
            self.model = llama.llama_model_load_from_file(
                str(path).encode(), llama.llama_model_default_params()
            )
        if not self.model:
            raise ModelLoadError(f"llama.cpp cannot load {path.name}")
        self.vocab = llama.llama_model_get_vocab(self.model)
        self._piece = ctypes.create_string_buffer(256)
        self._chat = self._chat_formatter()

    def context(self, load: LoadContext, sequences: int, batch_tokens: int) -> Any:
        """A context of ``sequences`` sequences, each with room for the spec's context (or the
        model's own) in one KV cache, decoding at most ``batch_tokens`` tokens a step.

        The cache is unified: a step is one pass over the weights whichever sequences it holds.
        With a region per sequence llama.cpp splits a batch into one pass per run of consecutive
        sequence ids (and per token count), which requests ending at their own times make the
        rule. The price is attention over every sequence's cells, masked, which long contexts
        feel before short ones.
        """
        llama = self.llama
        if sequences > llama.llama_max_parallel_sequences():
            raise ModelLoadError(
                f"runtime.parameters.parallel is {sequences}; llama.cpp runs at most "
                f"{llama.llama_max_parallel_sequences()} sequences in one context"
            )
        per_sequence = load.context_length or llama.llama_model_n_ctx_train(self.model)
        params = llama.llama_context_default_params()
        params.n_ctx = per_sequence * sequences
        params.n_batch = params.n_ubatch = batch_tokens
        params.n_seq_max = sequences
        params.n_threads = params.n_threads_batch = load.cpu_threads
        params.kv_unified = True
        params.no_perf = True
        with contextlib.redirect_stderr(io.StringIO()):
            made = llama.llama_init_from_model(self.model, params)
        if not made:
            raise ModelLoadError(
                f"llama.cpp cannot make a context of {sequences} sequences of {per_sequence} "
                f"tokens for {self.name} (too little memory? lower generation.contextLength or "
                f"runtime.parameters.parallel)"
            )
        return made

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes a token's keys and values take in the cache (f16, grouped-query heads)."""
        llama, model = self.llama, self.model
        heads = max(1, llama.llama_model_n_head(model))
        width = llama.llama_model_n_embd(model) * llama.llama_model_n_head_kv(model) // heads
        return int(2 * 2 * width * llama.llama_model_n_layer(model))

    # -- text ------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Token ids as the model reads a prompt: its start token, and special tokens parsed."""
        data = text.encode()
        room = len(data) + 8
        while True:
            tokens = (self.llama.llama_token * room)()
            count = self.llama.llama_tokenize(self.vocab, data, len(data), tokens, room, True, True)
            if count >= 0:
                return list(tokens[:count])
            room = -count

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes ``token`` stands for (a part of a character, for some)."""
        size = self.llama.llama_token_to_piece(
            self.vocab, token, self._piece, len(self._piece), 0, special
        )
        if size < 0:
            self._piece = ctypes.create_string_buffer(-size)
            return self.piece(token, special)
        return self._piece.raw[:size]

    def ends(self, token: int) -> bool:
        return bool(self.llama.llama_vocab_is_eog(self.vocab, token))

    def _chat_formatter(self) -> Any:
        template = self.llama.llama_model_chat_template(self.model, None)
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        return Jinja2ChatFormatter(
            template=template.decode(),
            eos_token=self._special_text(self.llama.llama_vocab_eos(self.vocab)),
            bos_token=self._special_text(self.llama.llama_vocab_bos(self.vocab)),
        )

    def _special_text(self, token: int) -> str:
        return self.piece(token, special=True).decode(errors="replace") if token >= 0 else ""

    def chat_prompt(self, messages: list[ChatMessage]) -> str:
        if self._chat is None:
            raise ValueError("this model has no chat template; use /v1/completions")
        conversation: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        prompt: str = self._chat(messages=conversation).prompt
        bos = self._special_text(self.llama.llama_vocab_bos(self.vocab))
        # tokenize() adds the start token itself; a template that writes it would double it.
        return prompt.removeprefix(bos) if bos else prompt

    # -- sampling and states ---------------------------------------------------------------------

    def sampler(self, sampling: Sampling, seed: int) -> Any:
        """A request's sampling chain: greedy at temperature 0, else top_p, temperature and a
        draw seeded with ``seed``. The stages are those of the library's ``Llama.generate``
        with the options this runtime offers, so a seed makes the same text as it did there."""
        llama = self.llama
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        if sampling.temperature == 0:
            stages = [llama.llama_sampler_init_greedy()]
        else:
            stages = [
                llama.llama_sampler_init_top_k(0),
                llama.llama_sampler_init_typical(1.0, 1),
                llama.llama_sampler_init_top_p(sampling.top_p, 1),
                llama.llama_sampler_init_min_p(0.0, 1),
                llama.llama_sampler_init_temp(sampling.temperature),
                llama.llama_sampler_init_dist(seed),
            ]
        for stage in stages:
            llama.llama_sampler_chain_add(chain, stage)  # the chain owns and frees it
        return chain

    def save(self, ctx: Any, sequence: int) -> Any:
        """The state (KV cache) of one sequence, as bytes in memory."""
        size = self.llama.llama_state_seq_get_size(ctx, sequence)
        state = (ctypes.c_uint8 * size)()
        self.llama.llama_state_seq_get_data(ctx, state, size, sequence)
        return state

    def restore(self, ctx: Any, sequence: int, state: Any) -> bool:
        """Load a saved ``state`` into ``sequence`` (replacing what it held); False if it fails,
        the sequence then empty."""
        size = ctypes.sizeof(state)
        return bool(self.llama.llama_state_seq_set_data(ctx, state, size, sequence) == size)
