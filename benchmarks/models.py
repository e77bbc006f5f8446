"""The registry's measured numbers: parameter count and CPU speed of every registered model.

Writes ``langchain_image_embeddings/encoders/model_speeds.json``, which ``list_models()``,
``imgemb models`` and docs/models.md show. Weights are random (seeded): speed does not depend
on their values, and nothing is downloaded.

* parameters: the whole model (both towers), counted on PyTorch's ``meta`` device (no memory);
  for timm / torchvision backbones, the encoder as built (classifier removed);
* speed: images per second through the image tower (what embedding images costs once they
  are decoded), eager torch fp32 under ``torch.inference_mode()``, batch ``--batch`` of
  random pixels at the model's input size, one warm-up batch then the best of ``--rounds``
  (the best round, so a busy neighbour on a shared machine slows it least), on
  ``--threads`` torch threads (default 1: see its help).

The machine (CPU, cores, torch threads, load average at the start) is recorded with the
numbers: they compare models with each other on one machine, not with other machines.

Usage::

    python benchmarks/models.py                         # every registered model, ~15 min on 2 busy cores
    python benchmarks/models.py --only open_clip:ViT-B-32 --only timm:efficientnet_lite0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from langchain_image_embeddings import create_encoder, list_models
from langchain_image_embeddings.encoders.catalog import SPEEDS_FILE, EncoderInfo

#: xlm-roberta-base's architecture (its config.json on the hub), to count it offline.
XLM_ROBERTA_BASE = {
    "vocab_size": 250002,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__.split('+')[0]} "
        f"with {torch.get_num_threads()} threads, fp32; a shared machine (load average "
        f"{load:.1f} when the run started)"
    )


def open_clip_text_cfg(text_cfg: dict[str, Any], folder: Path) -> dict[str, Any]:
    """An XLM-R text tower built from a local config (the hub's is not reachable here)."""
    from transformers import XLMRobertaConfig

    XLMRobertaConfig(**XLM_ROBERTA_BASE).save_pretrained(str(folder))
    return {**text_cfg, "hf_model_name": str(folder), "hf_model_pretrained": False}


def open_clip_model(info: EncoderInfo, tmp: Path) -> tuple[float, torch.nn.Module, int]:
    """Parameters of the whole model (meta device) and its image tower with random weights."""
    import open_clip
    from open_clip.model import _build_vision_tower

    name = info.architecture
    config = open_clip.get_model_config(name)
    extra: dict[str, Any] = {}
    if "hf_model_name" in config["text_cfg"]:
        extra["text_cfg"] = open_clip_text_cfg(config["text_cfg"], tmp / name)
    whole = open_clip.create_model(
        name, pretrained=None, device="meta", pretrained_text=False, **extra
    )
    params = sum(p.numel() for p in whole.parameters()) / 1e6
    del whole
    torch.manual_seed(0)
    tower = _build_vision_tower(
        config["embed_dim"], config["vision_cfg"], quick_gelu=config.get("quick_gelu", False)
    )
    return params, tower, int(config["vision_cfg"]["image_size"])


def backbone_model(info: EncoderInfo) -> tuple[float, torch.nn.Module, int]:
    torch.manual_seed(0)
    encoder = create_encoder(info.spec, pretrained=None, allow_random_weights=True)
    module = encoder.module
    params = sum(p.numel() for p in module.parameters()) / 1e6
    size = encoder.preprocess_config.input_size[0]

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return encoder.forward_images(pixels)

    return params, Tower(), size


def images_per_second(tower: torch.nn.Module, size: int, batch: int, rounds: int) -> float:
    tower.eval()
    pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    best = float("inf")
    with torch.inference_mode():
        tower(pixels)  # warm-up: allocator, kernels
        for _ in range(rounds):
            started = time.perf_counter()
            tower(pixels)
            best = min(best, time.perf_counter() - started)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared, oversubscribed machine 2 threads ran "
        "ViT-B/32 at a quarter of the speed of 1, spinning on each other)",
    )
    parser.add_argument("--only", action="append", metavar="SPEC", help="measure only these")
    parser.add_argument("--out", type=Path, default=SPEEDS_FILE)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    previous: dict[str, Any] = {}
    if args.only and args.out.is_file():  # re-measure some, keep the rest
        previous = json.loads(args.out.read_text(encoding="utf-8")).get("models", {})
    rows: dict[str, Any] = {}
    started_machine = machine()
    with tempfile.TemporaryDirectory() as tmp:
        for info in list_models():
            if args.only and info.spec not in args.only:
                if info.spec in previous:
                    rows[info.spec] = previous[info.spec]
                continue
            started = time.perf_counter()
            if info.backend == "open_clip":
                params, tower, size = open_clip_model(info, Path(tmp))
            else:
                params, tower, size = backbone_model(info)
            speed = images_per_second(tower, size, args.batch, args.rounds)
            del tower
            rows[info.spec] = {"params_m": round(params, 1), "img_per_s": float(f"{speed:.3g}")}
            print(
                f"{info.spec:40} {params:8.1f} M params {speed:8.2f} img/s "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    payload = {
        "machine": started_machine,
        "measured": time.strftime("%Y-%m-%d"),
        "batch": args.batch,
        "command": "python benchmarks/models.py",
        "models": rows,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
