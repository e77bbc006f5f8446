"""The training loop every trainer shares: AdamW, cosine schedule with linear warm-up,
gradient clipping, autocast on CUDA (see :mod:`langchain_image_embeddings.devices`), early
stopping on validation recall@k, per-epoch metrics written atomically.

What is trained (a head on cached features, or the towers) is
:mod:`langchain_image_embeddings.training.trainers`.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from langchain_image_embeddings._atomic import write_atomic
from langchain_image_embeddings.devices import autocast_context, training_autocast_dtype
from langchain_image_embeddings.encoders.base import ImageEncoder
from langchain_image_embeddings.encoders.local import FineTunedEncoder
from langchain_image_embeddings.training.data import (
    LabeledImages,
)
from langchain_image_embeddings.training.losses import InfoNCELoss, TripletLoss

if TYPE_CHECKING:
    pass
from langchain_image_embeddings.training.config import (
    Dataset,
    EpochMetrics,
    FitConfig,
    FitResult,
)
from langchain_image_embeddings.training.metrics import recall_not_measurable

__all__ = ["Trainer"]


def _scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _param_groups(params: Sequence[tuple[str, nn.Parameter]], weight_decay: float) -> list[Any]:
    decay = [p for n, p in params if p.ndim >= 2 and "logit_scale" not in n]
    rest = [p for n, p in params if not (p.ndim >= 2 and "logit_scale" not in n)]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)


class Trainer:
    """Shared loop; subclasses prepare data, define a step, and evaluate."""

    def __init__(self, encoder: ImageEncoder, cfg: FitConfig) -> None:
        self.base = encoder
        self.cfg = cfg
        self.device = encoder.device
        self.triplet = TripletLoss(cfg.margin, cfg.distance, cfg.mining)
        temperature = cfg.temperature
        with torch.no_grad():
            scale = getattr(encoder, "logit_scale", None)
        if cfg.mode != "head" and isinstance(scale, float) and scale > 0:
            temperature = 1.0 / scale
        self.infonce = InfoNCELoss(temperature).to(self.device)
        self.amp_dtype = training_autocast_dtype(self.device, enabled=cfg.amp)

    # subclass API
    def prepare(self, train: Dataset, val: Dataset | None) -> None:
        raise NotImplementedError

    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        raise NotImplementedError

    def batches(self, rng: random.Random) -> list[list[int]]:
        raise NotImplementedError

    def step_loss(self, batch: list[int], rng: random.Random) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, val: Dataset, *, baseline: bool = False) -> dict[str, float]:
        raise NotImplementedError

    def train_mode(self) -> None:
        raise NotImplementedError

    def snapshot(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def result_encoder(self) -> FineTunedEncoder:
        raise NotImplementedError

    def _loss(
        self, a: torch.Tensor, b: torch.Tensor | None, labels: torch.Tensor | None
    ) -> torch.Tensor:
        if self.cfg.loss == "triplet":
            assert labels is not None
            return self.triplet(F.normalize(a.float(), dim=-1), labels.to(a.device))  # type: ignore[no-any-return]
        assert b is not None
        return self.infonce(a.float(), b.float())  # type: ignore[no-any-return]

    def run(self, train: Dataset, val: Dataset | None, rng: random.Random) -> FitResult:
        cfg = self.cfg
        result_extra: dict[str, Any] = {"train_size": len(train), "val_size": len(val or [])}
        unmeasurable = recall_not_measurable(val) if val is not None else None
        if unmeasurable is not None:  # recall would read 0.000 (or 1.000): report why instead
            result_extra["recall_not_measurable"] = unmeasurable
            val = None
        self.prepare(train, val)
        baseline = self.evaluate(val, baseline=True) if val is not None else {}
        named = self.parameters()
        if cfg.loss == "infonce" and self.infonce.logit_scale.requires_grad:
            named = [*named, ("loss.logit_scale", self.infonce.logit_scale)]
        if not named:
            raise ValueError("nothing to train: no trainable parameters")
        optimizer = torch.optim.AdamW(_param_groups(named, cfg.weight_decay), lr=cfg.learning_rate)
        steps_per_epoch = len(self.batches(random.Random(cfg.seed)))
        if steps_per_epoch == 0:
            # Every epoch would run no step and return the untrained model with loss 0.0.
            raise ValueError(_no_batch_reason(train, cfg))
        scheduler = _scheduler(optimizer, steps_per_epoch * cfg.epochs, cfg.warmup_ratio)
        scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)
        history: list[EpochMetrics] = []
        key = f"recall_at_{cfg.early_stopping_k}"
        best_score, best_epoch, best_state, stale = -1.0, 0, self.snapshot(), 0
        bar = _progress(cfg.epochs * steps_per_epoch, cfg.show_progress, f"finetune ({cfg.mode})")
        try:
            for epoch in range(1, cfg.epochs + 1):
                started = time.perf_counter()
                self.train_mode()
                total, count = 0.0, 0
                for batch in self.batches(rng):
                    optimizer.zero_grad(set_to_none=True)
                    with self._autocast():
                        loss = self.step_loss(batch, rng)
                    scaled: torch.Tensor = scaler.scale(loss)
                    scaled.backward()  # type: ignore[no-untyped-call]
                    if cfg.grad_clip is not None:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_([p for _, p in named], cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    self.infonce.clamp_()
                    total += float(loss.detach()) * len(batch)
                    count += len(batch)
                    bar.update(1)
                scores = self.evaluate(val) if val is not None else {}
                metrics = EpochMetrics(
                    epoch=epoch,
                    loss=total / max(1, count),
                    recall_at_1=scores.get("recall_at_1"),
                    recall_at_5=scores.get("recall_at_5"),
                    lr=float(optimizer.param_groups[0]["lr"]),
                    seconds=time.perf_counter() - started,
                )
                history.append(metrics)
                bar.set_postfix(loss=f"{metrics.loss:.4f}", r1=metrics.recall_at_1)
                score = scores.get(key, scores.get("recall_at_1", -metrics.loss))
                if val is None or score > best_score:
                    best_score, best_epoch, best_state, stale = score, epoch, self.snapshot(), 0
                else:
                    stale += 1
                partial = FitResult(
                    self.result_encoder(), baseline, history, best_epoch, cfg, result_extra
                )
                if cfg.metrics_path:
                    _write_json(cfg.metrics_path, partial.metrics())
                if cfg.patience is not None and stale >= cfg.patience:
                    break
        finally:
            bar.close()
        if cfg.restore_best:
            self.restore(best_state)
        else:
            best_epoch = history[-1].epoch
        encoder = self.result_encoder()
        encoder.module.eval()
        result_extra["temperature"] = self.infonce.temperature
        result = FitResult(encoder, baseline, history, best_epoch, cfg, result_extra)
        if cfg.metrics_path:
            _write_json(cfg.metrics_path, result.metrics())
        return result

    def _autocast(self) -> Any:
        return autocast_context(self.device, self.amp_dtype)


def _no_batch_reason(train: Dataset, cfg: FitConfig) -> str:
    if isinstance(train, LabeledImages) and cfg.loss == "triplet":
        return (
            f"no training batch: none of the {len(train.classes)} labels has 2 training images "
            f"({len(train)} images), and the triplet loss needs an anchor and a positive of "
            "one label; add images or use a smaller validation fraction"
        )
    return f"no training batch: {len(train)} training item(s); InfoNCE needs at least 2"


def _write_json(path: str, data: dict[str, Any]) -> None:
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))
