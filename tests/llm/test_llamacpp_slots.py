"""The llama.cpp engine's slots, driven step by step as the scheduler drives them, on the tiny GGUF
model: a long prompt is read in pieces while another request keeps generating, and a prompt that
starts like an earlier one (kept in a slot, or saved when its slot was taken) reads only the rest
and makes the same text as read whole."""

from __future__ import annotations

from pathlib import Path

from modelplane.runtime.formats.base import LoadContext
from modelplane.runtime.formats.llamacpp_slots import LlamaSlots
from modelplane.runtime.generation import Sampling

GREEDY = Sampling(max_tokens=12, temperature=0.0)


def engine(llm_dir: Path, **parameters: str) -> LlamaSlots:
    context = LoadContext(artifact=llm_dir / "tiny-chat.gguf", parameters=parameters)
    return LlamaSlots(context)


def generate(slots: LlamaSlots, prompt: list[int]) -> str:
    """Greedy tokens of ``prompt`` alone, its slot freed after."""
    return finish(slots, slots.start(prompt, GREEDY))


def finish(slots: LlamaSlots, slot: int) -> str:
    """The text the started ``slot`` makes alone; the slot freed after."""
    pieces: list[str] = []
    while len(pieces) < GREEDY.max_tokens:
        piece = slots.step().get(slot, "")
        if piece is None:
            break
        pieces.append(piece)
    slots.finish(slot)
    return "".join(pieces)


def held(slots: LlamaSlots) -> int:
    """Tokens the running sequences hold in the KV cache (read, or found there)."""
    return round(slots.kv_cache_usage * slots.slots * slots.context_length)


def test_a_long_prompt_is_read_in_pieces_while_another_request_generates(llm_dir: Path) -> None:
    slots = engine(llm_dir, parallel="2", batchTokens="8")
    running = slots.start(slots.tokenize("Tell me a story"), Sampling(max_tokens=100, seed=3))
    while running not in slots.step():  # its prompt read: it generates from now on
        pass
    long = slots.tokenize("The weather is sunny and warm, with a light wind from the sea. " * 4)
    assert len(long) > 40
    reading = slots.start(long, Sampling(max_tokens=100, seed=4))
    steps: list[dict[int, str | None]] = []
    while reading not in (made := slots.step()):
        steps.append(made)
    # Five steps of eight tokens at least for the prompt, a token for the other between each.
    assert len(steps) >= 2 * (len(long) // 8) - 1
    assert sum(running in made for made in steps) >= len(steps) // 2
    assert all(piece is not None for made in steps for piece in made.values())


def test_a_prompt_that_starts_like_an_earlier_one_reads_only_the_rest(llm_dir: Path) -> None:
    whole = engine(llm_dir, parallel="1", promptCacheMiB="0")
    first = whole.tokenize("Hello, how are you today?")
    longer = whole.tokenize("Hello, how are you today? I am fine, thank you. What is the weather?")
    others = [whole.tokenize(f"Tell me a story number {n}") for n in range(3)]
    expected = generate(whole, longer)

    slots = engine(llm_dir, parallel="2")
    generate(slots, first)
    # The slot that ran the first prompt holds it: the longer one starts from there.
    slot = slots.start(longer, GREEDY)
    assert held(slots) == len(first)
    assert finish(slots, slot) == expected
    for other in others:  # every slot taken by other prompts: the longer one is saved, evicted
        generate(slots, other)
    slot = slots.start(longer, GREEDY)
    assert held(slots) == len(longer) - 1  # restored: only its last token is read again
    assert finish(slots, slot) == expected

    unsaved = engine(llm_dir, parallel="2", promptCacheMiB="0")
    for prompt in (longer, *others):
        generate(unsaved, prompt)
    unsaved.start(longer, GREEDY)
    assert held(unsaved) == 1  # only the start token: the whole prompt is read again
