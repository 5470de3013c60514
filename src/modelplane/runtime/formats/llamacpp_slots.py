"""A GGUF language model on llama.cpp's own C API: several sequences decoded together in one
context, a :class:`~modelplane.runtime.generation.BatchGenerator` for the scheduler.

The context is split into ``runtime.parameters.parallel`` slots (default 4), each a sequence of
llama.cpp's with room for the model's context (or ``generation.contextLength``) in one KV cache
of that times the slots. A step is one ``llama_decode``: either the next token of
every generating slot, or as much of the prompts still being read as fits
``runtime.parameters.batchTokens`` (default 256), oldest first. The two kinds take turns while
both have work, so a long prompt is read in pieces while the running streams keep making tokens,
and a new request's first token comes after one step of prompts. Each request samples with its
own chain (temperature, top_p, its seed), so a seeded request makes the same text alone or in a
batch.

Prompt reuse: a slot keeps its sequence's cache after its request ends. A new prompt takes the
free slot that already holds the longest start of it and reads only the rest; a slot about to be
overwritten first saves its sequence's state in memory (``runtime.parameters.promptCacheMiB``,
default 64; 0 turns it off), and a later prompt that starts like a saved state restores it.

LoRA adapters (``spec.adapters``): llama.cpp applies adapters to a whole context, so one step
decodes the sequences of one adapter (or of none). The slots are grouped by adapter and the
groups take turns, the one that waited longest first, so no group starves; within a group,
prompts and next tokens take turns as above. With several adapters running, each stream gets a
step in as many as there are groups, and each step decodes fewer sequences: the price of
applying adapters per context rather than per sequence. A sequence's cache (and a saved state)
is reused only by a prompt of the same adapter.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import io
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelplane.errors import ModelLoadError
from modelplane.runtime.formats.base import LoadContext
from modelplane.runtime.formats.llamacpp_model import LlamaModel
from modelplane.runtime.formats.llamacpp_states import SavedStates, shared_prefix
from modelplane.runtime.generation import ChatMessage, Sampling

DEFAULT_PARALLEL, DEFAULT_BATCH_TOKENS, DEFAULT_PROMPT_CACHE_MIB = 4, 256, 64


@dataclass(eq=False)
class _Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV the sequence holds
    pending: list[int] = field(default_factory=list)  # prompt tokens still to read
    next_token: int | None = None  # the token made last, read at the next step
    sampler: Any = None  # the request's llama_sampler chain, while busy
    decoder: Any = None  # its incremental UTF-8 decoder
    busy: bool = False
    turn: int = 0  # when it was last started: prompts are read oldest first, free slots LRU
    adapter: str = ""  # the key of the LoRA adapter its cache was made with; "": none


class LlamaSlots:
    """A GGUF chat or text-generation model with ``parallel`` slots; every call comes from the
    model thread."""

    def __init__(self, context: LoadContext) -> None:
        parallel = context.whole_number("parallel", DEFAULT_PARALLEL)
        batch_tokens = context.whole_number("batchTokens", DEFAULT_BATCH_TOKENS)
        if parallel < 1:
            raise ModelLoadError(f"runtime.parameters.parallel must be 1 or more, not {parallel}")
        if batch_tokens < parallel:
            raise ModelLoadError(
                f"runtime.parameters.batchTokens ({batch_tokens}) must be at least "
                f"runtime.parameters.parallel ({parallel}): each step reads one token per slot"
            )
        self._model = LlamaModel(context)
        self._llama = self._model.llama
        self._ctx = self._model.context(context, parallel, batch_tokens)
        self._memory = self._llama.llama_get_memory(self._ctx)
        self._batch = self._llama.llama_batch_init(batch_tokens, 0, 1)
        self._batch_tokens = batch_tokens
        self._slots = [_Slot(seq) for seq in range(parallel)]
        self._turns = itertools.count(1)
        self._read_last: dict[str, bool] = {}  # per adapter: whether its last step read prompts
        self._adapters: dict[str, Any] = {}  # loaded LoRA adapters by key
        self._applied = ""  # the adapter the context applies now
        self._stepped: dict[str, int] = {}  # per adapter: the step it last had
        self._steps = itertools.count(1)
        cache_mib = context.whole_number("promptCacheMiB", DEFAULT_PROMPT_CACHE_MIB)
        self._saved = SavedStates(cache_mib << 20) if cache_mib > 0 else None
        self._cells = int(self._llama.llama_n_ctx(self._ctx))
        self._context_length = self._cells // parallel  # each slot's share of the cache
        saved = (cache_mib << 20) // max(1, self._model.kv_bytes_per_token) if cache_mib > 0 else 0
        self._cache_tokens = self._cells + saved

    # -- what the scheduler reads ----------------------------------------------------------------

    @property
    def slots(self) -> int:
        return len(self._slots)

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def cache_tokens(self) -> int:
        return self._cache_tokens

    @property
    def kv_cache_usage(self) -> float:
        held = sum(len(slot.cached) for slot in self._slots if slot.busy)
        return held / self._cells

    def tokenize(self, text: str) -> list[int]:
        return self._model.tokenize(text)

    def chat_prompt(self, messages: list[ChatMessage]) -> str:
        return self._model.chat_prompt(messages)

    # -- sequences -------------------------------------------------------------------------------

    def start(self, prompt: list[int], sampling: Sampling) -> int:
        if sampling.adapter and sampling.adapter not in self._adapters:
            raise RuntimeError(f"adapter {sampling.adapter} is not loaded")
        slot, kept = self._place(prompt, sampling.adapter)
        # At least the prompt's last token is read again: its logits give the first token.
        kept = min(kept, len(prompt) - 1)
        if not self._llama.llama_memory_seq_rm(self._memory, slot.seq, kept, -1):
            self._llama.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            kept = 0
        slot.cached, slot.pending = prompt[:kept], prompt[kept:]
        slot.next_token, slot.busy, slot.turn = None, True, next(self._turns)
        slot.adapter = sampling.adapter
        slot.sampler = self._model.sampler(sampling, _seed(sampling))
        slot.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        return slot.seq

    def _place(self, prompt: list[int], adapter: str) -> tuple[_Slot, int]:
        """The free slot for ``prompt`` and how many of its tokens that slot holds already: the
        one holding the longest start of it (made with the same adapter), else the least
        recently used, restoring a saved state into it when one starts more like the prompt."""
        free = [slot for slot in self._slots if not slot.busy]

        def holds(slot: _Slot) -> int:
            return shared_prefix(slot.cached, prompt) if slot.adapter == adapter else 0

        best = max(free, key=lambda slot: (holds(slot), -slot.turn))
        kept = holds(best)
        if kept == 0:
            best = min(free, key=lambda slot: slot.turn)
        found = self._saved.longest(prompt, adapter) if self._saved is not None else None
        if found is not None and found.shared > kept:
            self._keep_state(best)
            if self._model.restore(self._ctx, best.seq, found.state):
                best.cached = list(found.tokens)
                return best, found.shared
            best.cached = []
            return best, 0
        if kept < len(best.cached):
            self._keep_state(best)
        return best, kept

    def _keep_state(self, slot: _Slot) -> None:
        """Save the state of the sequence ``slot`` holds before it is overwritten."""
        if self._saved is not None and slot.cached:
            self._saved.put(slot.cached, self._model.save(self._ctx, slot.seq), slot.adapter)

    def finish(self, slot: int) -> None:
        found = self._slots[slot]
        self._llama.llama_sampler_free(found.sampler)
        found.sampler, found.decoder, found.busy = None, None, False
        found.pending, found.next_token = [], None

    def step(self) -> dict[int, str | None]:
        adapter, outputs = self._fill_batch()
        if self._batch.n_tokens == 0:
            return {}
        self._apply(adapter)
        code = self._llama.llama_decode(self._ctx, self._batch)
        if code != 0:
            self._forget()
            raise RuntimeError(f"llama_decode returned {code}")
        made: dict[int, str | None] = {}
        for slot, index in outputs.items():
            token = self._llama.llama_sampler_sample(slot.sampler, self._ctx, index)
            if self._model.ends(token):
                made[slot.seq] = None
                continue
            slot.next_token = token
            made[slot.seq] = slot.decoder.decode(self._model.piece(token))
        return made

    def _fill_batch(self) -> tuple[str, dict[_Slot, int]]:
        """Put this step's tokens in the batch: the sequences of one adapter, prompts or next
        tokens, taking turns while both wait; the adapter, and the slots whose logits it
        computes with their index in it.

        The two kinds are not mixed in one step: a step of prompts alone gives new requests
        their first token one decode step sooner, for about the same work in all.
        """
        self._batch.n_tokens = 0
        busy = [s for s in self._slots if s.busy and (s.pending or s.next_token is not None)]
        if not busy:
            return "", {}
        # The adapters take turns: the one whose last step is oldest goes.
        adapter = min({s.adapter for s in busy}, key=lambda a: (self._stepped.get(a, 0), a))
        self._stepped[adapter] = next(self._steps)
        group = [slot for slot in busy if slot.adapter == adapter]  # by sequence id
        reading = [slot for slot in group if slot.pending]
        generating = [slot for slot in group if slot.next_token is not None]
        read = bool(reading) and not (generating and self._read_last.get(adapter, False))
        self._read_last[adapter] = read
        outputs = self._read(reading) if read else self._next(generating)
        for index in range(self._batch.n_tokens):
            self._batch.logits[index] = False
        for index in outputs.values():
            self._batch.logits[index] = True
        return adapter, outputs

    # -- LoRA adapters ---------------------------------------------------------------------------

    def load_adapter(self, key: str, path: Path) -> None:
        with contextlib.redirect_stderr(io.StringIO()):
            made = self._llama.llama_adapter_lora_init(self._model.model, str(path).encode())
        if not made:
            raise ModelLoadError(
                f"llama.cpp cannot load {path.name} as a LoRA adapter of {self._model.name} "
                f"(not a GGUF LoRA adapter, or one made for a model of another architecture "
                f"or shape)"
            )
        self._adapters[key] = made

    def unload_adapter(self, key: str) -> bool:
        if any(slot.busy and slot.adapter == key for slot in self._slots):
            return False
        made = self._adapters.pop(key, None)
        if made is None:
            return True
        if self._applied == key:
            self._apply("")
        self._llama.llama_adapter_lora_free(made)
        return True

    def _apply(self, adapter: str) -> None:
        """Make the context apply ``adapter`` ("": none) from the next decode on."""
        if adapter == self._applied:
            return
        llama = self._llama
        if adapter:
            handles = (llama.llama_adapter_lora_p_ctypes * 1)(self._adapters[adapter])
            scales = (ctypes.c_float * 1)(1.0)
            code = llama.llama_set_adapters_lora(self._ctx, handles, 1, scales)
        else:
            code = llama.llama_set_adapters_lora(self._ctx, None, 0, None)
        if code != 0:
            raise RuntimeError(f"llama.cpp cannot apply adapter {adapter or '(none)'}: {code}")
        self._applied = adapter

    def _next(self, generating: list[_Slot]) -> dict[_Slot, int]:
        """Each generating slot's last token, whose logits give its next one."""
        outputs: dict[_Slot, int] = {}
        for slot in generating:
            token, slot.next_token = slot.next_token, None
            if token is not None:
                outputs[slot] = self._add(slot, token)
        return outputs

    def _read(self, reading: list[_Slot]) -> dict[_Slot, int]:
        """As much of the prompts as fits, oldest request first; a prompt's last token gives
        its first generated one."""
        pieces: dict[_Slot, list[int]] = {}
        room = self._batch_tokens
        for slot in sorted(reading, key=lambda slot: slot.turn):
            if room == 0:
                break
            pieces[slot], slot.pending = slot.pending[:room], slot.pending[room:]
            room -= len(pieces[slot])
        outputs: dict[_Slot, int] = {}
        for slot in sorted(pieces, key=lambda slot: slot.seq):
            index = [self._add(slot, token) for token in pieces[slot]][-1]
            if not slot.pending:
                outputs[slot] = index
        return outputs

    def _add(self, slot: _Slot, token: int) -> int:
        batch, index = self._batch, int(self._batch.n_tokens)
        batch.token[index] = token
        batch.pos[index] = len(slot.cached)
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = slot.seq
        batch.n_tokens = index + 1
        slot.cached.append(token)
        return index

    def _forget(self) -> None:
        """After a failed step: what the busy slots' sequences hold is unknown, so drop it."""
        for slot in self._slots:
            if slot.busy:
                self._llama.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
                slot.cached = []


def _seed(sampling: Sampling) -> int:
    return sampling.seed if sampling.seed is not None else int(random.getrandbits(31))
