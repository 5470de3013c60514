"""The huggingface engine on a GPU: the tiny transformers model of examples/llm/make_hf_model.py
served on CUDA by `modelplane up`, chat and streaming requests straight at the replica and through
the gateway; tokens/s and time to first token.

    python -m benchmarks.llm.gpu_check [--out DIR]        (scripts/gpu-check runs it)

It needs what a GPU machine with PyTorch and transformers has (numpy, tokenizers, safetensors) and
modelplane's own dependencies. The figures go to stdout and to DIR/gpu-check.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.llm.run import direct_and_through_gateway, make_hf_model


def hf_model(directory: Path, device: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "tiny-hf"},
        "spec": {
            "source": {"uri": directory.as_uri()},
            "format": "huggingface",
            "task": "chat",
            "resources": {"cpu": "2", "accelerators": 1},
            "scaling": {"minReplicas": 1, "maxReplicas": 1},
            "rollout": {"strategy": "Immediate"},
            "runtime": {"parameters": {"device": device}},
            "generation": {"maxTokens": 256},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--device", default="cuda", help="cuda; cpu to try the script itself")
    args = parser.parse_args()
    import torch  # the GPU machine's own

    found: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU",
        "torch": torch.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_hf_model.write(work / "tiny-hf")
        found[f"huggingface_{args.device}"] = direct_and_through_gateway(
            work, hf_model(work / "tiny-hf", args.device)
        )
    print(json.dumps(found, indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu-check.json").write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
