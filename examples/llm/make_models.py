"""Write the LLM examples: a tiny llama-architecture language model as GGUF, made here from
nothing, and the Models that serve it.

  tiny-chat.gguf     random weights (seeded: the same file every time) and a tokenizer whose
                     vocabulary is learned from the text below: every word of it, with each of its
                     prefixes so that llama.cpp's SentencePiece-style merges can build it, scored
                     by frequency, over a byte fallback; a ChatML chat template
  chat.yaml          a Model `tiny-chat` serving it for chat (and completions) over the OpenAI API
  embedding.yaml     a Model `tiny-embed` serving its mean-pooled hidden states as embeddings
  tiny-chat-pirate.gguf, tiny-chat-poet.gguf
                     two LoRA adapters of tiny-chat (seeded low-rank updates of its attention
                     and output layers) in llama.cpp's GGUF adapter form

The model writes words, not sense: it exists to exercise the whole serving path (tokenizing, chat
templates, sampling, streaming, limits, the prompt cache) in seconds on a CPU, with no download.
Both manifests pin the file's sha256.

    python examples/llm/make_models.py [--out DIR] [--seed N] [--embedding N --layers N]

Another seed makes another model of the same shape; a larger one reads prompts slower.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

CORPUS = """
A model release should be routine. Declare the model, and the platform serves it behind one
gateway, rolls it out step by step, watches its errors and its latency, and promotes it or rolls
it back. Every change to the spec is a new revision; revisions are immutable, and traffic moves
between them by weight. Replicas scale with the requests in flight, down to zero when nobody
asks, and a request that arrives while the model is cold waits for it to start. The same spec
runs on one machine and on any cluster. Tokens stream to the client as they are generated, and
a client that goes away stops the work it asked for. Time to first token and time per output
token are measured for every request, and the prompt cache keeps a conversation warm on the
replica that served it before. Hello, how are you today? I am fine, thank you. What is the
weather like? It is sunny and warm, with a light wind from the sea. Tell me a story about a
small robot who learned to paint the sky at night with stars of every colour.
"""

SPACE = "\u2581"  # SentencePiece's word-boundary mark
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

N_HEAD, N_CTX = 4, 2048


@dataclass(frozen=True)
class Size:
    embedding: int = 64
    layers: int = 2

    @property
    def feed_forward(self) -> int:
        return 2 * self.embedding


def vocabulary(text: str) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types: specials, the 256 bytes, then learned pieces."""
    words = Counter(SPACE + w for w in re.findall(r"[A-Za-z]+|[^\sA-Za-z]", text))
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        for end in range(1, len(word) + 1):  # every prefix: a merge path for llama.cpp's SPM
            pieces[word[:end]] += count * end  # longer pieces score higher, so merges go on
        for char in word:
            pieces[char] += count
    total = sum(pieces.values())
    learned = sorted(pieces, key=lambda p: (-pieces[p], p))
    tokens = [*SPECIALS, *(f"<0x{b:02X}>" for b in range(256)), *learned]
    scores = [0.0] * (len(SPECIALS) + 256) + [math.log(pieces[p] / total) for p in learned]
    types = (
        [gguf.TokenType.UNKNOWN, *[gguf.TokenType.CONTROL] * (len(SPECIALS) - 1)]
        + [gguf.TokenType.BYTE] * 256
        + [gguf.TokenType.NORMAL] * len(learned)
    )
    return tokens, scores, [int(t) for t in types]


def write(path: Path, seed: int = 7, size: Size = Size()) -> None:
    """The model; a larger ``size`` (benchmarks) makes prompts cost more to read."""
    N_EMBD, N_FF, N_LAYER = size.embedding, size.feed_forward, size.layers  # noqa: N806
    tokens, scores, types = vocabulary(CORPUS)
    rng = np.random.default_rng(seed)

    def weights(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-chat")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(SPECIALS.index("<s>"))
    writer.add_eos_token_id(SPECIALS.index("<|im_end|>"))
    writer.add_unk_token_id(SPECIALS.index("<unk>"))
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    vocab = len(tokens)
    writer.add_tensor("token_embd.weight", weights(vocab, N_EMBD, scale=1.0))
    for layer in range(N_LAYER):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", weights(N_EMBD, N_EMBD))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_up.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_down.weight", weights(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    # Learned pieces get large random logits and everything else none, so that the model writes
    # words; the end-of-turn token gets a small chance, so that some answers end by themselves.
    output = np.zeros((vocab, N_EMBD), dtype=np.float32)
    first_learned = len(SPECIALS) + 256
    output[first_learned:] = weights(vocab - first_learned, N_EMBD, scale=0.5)
    output[SPECIALS.index("<|im_end|>")] = weights(N_EMBD, scale=0.3)
    writer.add_tensor("output.weight", output)

    _finish(writer)


def _finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_adapter(path: Path, seed: int, size: Size = Size(), rank: int = 4) -> None:
    """A LoRA adapter of the model of ``size`` in llama.cpp's GGUF form: low-rank updates
    (``lora_a``: rank by input, ``lora_b``: output by rank) of every attention projection and of
    the output layer, seeded and large enough that the adapted model writes other words."""
    N_EMBD, N_LAYER = size.embedding, size.layers  # noqa: N806
    vocab = len(vocabulary(CORPUS)[0])
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(rank))  # scale alpha/rank: 1

    def pair(name: str, outputs: int, inputs: int, scale: float) -> None:
        a = (rng.standard_normal((rank, inputs)) * scale).astype(np.float32)
        b = (rng.standard_normal((outputs, rank)) * scale).astype(np.float32)
        writer.add_tensor(f"{name}.weight.lora_a", a)
        writer.add_tensor(f"{name}.weight.lora_b", b)

    for layer in range(N_LAYER):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            pair(f"blk.{layer}.{name}", N_EMBD, N_EMBD, 0.1)
    pair("output", vocab, N_EMBD, 0.5)
    _finish(writer)


MANIFEST = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  source:
    uri: {uri}
    sha256: {sha256}
  format: llamacpp
  task: {task}
  resources:
    cpu: "1"
    memory: 512Mi
  scaling:
    minReplicas: 1
    maxReplicas: 2
{extra}"""

CHAT_EXTRA = """\
  generation:
    maxTokens: 1024
    timeoutSeconds: 60
"""


# LoRA adapters of tiny-chat, each its own seed (spec.adapters: docs/llm.md#lora-adapters).
ADAPTERS = {"tiny-chat-pirate.gguf": 11, "tiny-chat-poet.gguf": 12}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--embedding", type=int, default=Size.embedding, help="width")
    parser.add_argument("--layers", type=int, default=Size.layers, help="depth")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    model = out / "tiny-chat.gguf"
    write(model, args.seed, Size(args.embedding, args.layers))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    for adapter, seed in ADAPTERS.items():
        write_adapter(out / adapter, seed, Size(args.embedding, args.layers))
    for file, name, task, extra in (
        ("chat.yaml", "tiny-chat", "chat", CHAT_EXTRA),
        ("embedding.yaml", "tiny-embed", "embedding", ""),
    ):
        manifest = MANIFEST.format(
            name=name, uri=model.as_uri(), sha256=digest, task=task, extra=extra
        )
        (out / file).write_text(manifest)
    size = model.stat().st_size
    print(f"wrote {model} ({size} bytes), its adapters, chat.yaml and embedding.yaml in {out}")


if __name__ == "__main__":
    main()
