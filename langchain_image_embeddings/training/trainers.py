"""The training loops: a projection head on cached features, or the towers themselves.

AdamW, cosine schedule with linear warm-up, gradient clipping, autocast on CUDA (see
:mod:`langchain_image_embeddings.devices`), early stopping on validation recall@k,
per-epoch metrics written atomically.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from langchain_image_embeddings._atomic import write_atomic
from langchain_image_embeddings.devices import autocast_context, training_autocast_dtype
from langchain_image_embeddings.encoders.base import ImageEncoder
from langchain_image_embeddings.encoders.local import FineTunedEncoder
from langchain_image_embeddings.encoders.pooling import ProjectionHead
from langchain_image_embeddings.training.data import (
    CaptionedImages,
    LabeledImages,
    load_images,
    train_transform,
)
from langchain_image_embeddings.training.losses import InfoNCELoss, TripletLoss

if TYPE_CHECKING:
    from PIL import Image
from langchain_image_embeddings.training.config import (
    Dataset,
    EpochMetrics,
    FitConfig,
    FitResult,
    Mode,
)
from langchain_image_embeddings.training.metrics import evaluate, recall_not_measurable
from langchain_image_embeddings.training.sampling import batched, pk_batches, random_batches

# Layers after the last blocks that partial mode also trains (open_clip names).
_PARTIAL_ALSO = ("visual.proj", "visual.ln_post.", "ln_final.", "text_projection")


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


class HeadTrainer(Trainer):
    """Frozen backbone: cache its features once, train projection heads on them."""

    def prepare(self, train: Dataset, val: Dataset | None) -> None:
        cfg = self.cfg
        base = self.base
        in_dim = base.dim
        out_dim = cfg.embedding_dim or min(256, in_dim)
        self.head = ProjectionHead(in_dim, out_dim, cfg.hidden_dim).to(self.device)
        self.text_head: ProjectionHead | None = None
        self.captions = isinstance(train, CaptionedImages)
        views = cfg.head_views
        if cfg.loss == "infonce" and not self.captions:
            views = max(2, views)
        augment = train_transform(
            base.preprocess_config,
            scale=cfg.crop_scale,
            flip=cfg.flip,
            color_jitter=cfg.color_jitter,
        )
        images = load_images(train.sources)
        feats = [self._features(images, None)]
        for _ in range(1, views):
            feats.append(self._features(images, augment if cfg.augment else None))
        self.train_feats = torch.stack(feats)  # (V, N, F)
        if isinstance(train, CaptionedImages):
            self.text_head = ProjectionHead(
                self._text_features(train.captions[:1]).shape[-1], out_dim, cfg.hidden_dim
            ).to(self.device)
            self.train_text = self._text_features(train.captions)
        else:
            self.train_labels = torch.as_tensor(train.label_ids())
        if val is not None:
            self.val_feats = self._features(load_images(val.sources), None)
            if isinstance(val, CaptionedImages):
                self.val_text = self._text_features(val.captions)

    def _features(
        self, images: Sequence[Image.Image], transform: Callable[[Image.Image], torch.Tensor] | None
    ) -> torch.Tensor:
        out = []
        for chunk in batched(images, self.cfg.batch_size):
            if transform is None:
                pixels = self.base.preprocess_batch(chunk)
            else:
                pixels = torch.stack([transform(im) for im in chunk])
            out.append(self.base.encode_images(pixels).float().clone())
        return torch.cat(out)

    def _text_features(self, texts: Sequence[str]) -> torch.Tensor:
        out = [
            self.base.encode_texts(list(chunk)).float().clone()
            for chunk in batched(texts, self.cfg.batch_size)
        ]
        return torch.cat(out)

    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        named = [(f"head.{n}", p) for n, p in self.head.named_parameters()]
        if self.text_head is not None:
            named += [(f"text_head.{n}", p) for n, p in self.text_head.named_parameters()]
        return named

    def batches(self, rng: random.Random) -> list[list[int]]:
        n = self.train_feats.shape[1]
        if self.cfg.loss == "triplet":
            views = self.train_feats.shape[0]
            labels = self.train_labels.tolist() * views
            return pk_batches(labels, self.cfg.batch_size, self.cfg.samples_per_class, rng)
        return random_batches(n, self.cfg.batch_size, rng)

    def step_loss(self, batch: list[int], rng: random.Random) -> torch.Tensor:
        idx = torch.as_tensor(batch)
        views, n, _ = self.train_feats.shape
        if self.cfg.loss == "triplet":
            flat = self.train_feats.reshape(views * n, -1)
            labels = self.train_labels.repeat(views)
            return self._loss(self.head(flat[idx]), None, labels[idx])
        if self.captions:
            assert self.text_head is not None
            # One of the cached views per step (head_views > 1 were computed, then unused).
            view = rng.randrange(views) if views > 1 else 0
            a = self.head(self.train_feats[view, idx])
            return self._loss(a, self.text_head(self.train_text[idx]), None)
        v1, v2 = rng.sample(range(views), 2)
        return self._loss(
            self.head(self.train_feats[v1, idx]), self.head(self.train_feats[v2, idx]), None
        )

    def evaluate(self, val: Dataset, *, baseline: bool = False) -> dict[str, float]:
        with torch.inference_mode():
            if baseline:
                images = self.val_feats
                texts = getattr(self, "val_text", None)
            else:
                self.head.eval()
                images = self.head(self.val_feats)
                texts = None
                if self.text_head is not None:
                    self.text_head.eval()
                    texts = self.text_head(self.val_text)
        return evaluate(images, texts, val)

    def train_mode(self) -> None:
        self.head.train()
        if self.text_head is not None:
            self.text_head.train()

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.parameters()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.parameters():
                p.copy_(state[n])

    def result_encoder(self) -> FineTunedEncoder:
        return FineTunedEncoder(self.base, head=self.head, text_head=self.text_head)


class TowerTrainer(Trainer):
    """Partial or full fine-tuning: forward through the (partly) unfrozen encoder."""

    def prepare(self, train: Dataset, val: Dataset | None) -> None:
        cfg = self.cfg
        head = text_head = None
        if cfg.embedding_dim is not None:
            head = ProjectionHead(self.base.dim, cfg.embedding_dim, cfg.hidden_dim)
            if isinstance(train, CaptionedImages):
                # Captions must land in the head's space too: an image head alone made the
                # first step fail ("trained without a text head"). CLIP's text features
                # have the image features' width.
                text_head = ProjectionHead(self.base.dim, cfg.embedding_dim, cfg.hidden_dim)
        self.model = FineTunedEncoder(self.base, head=head, text_head=text_head, device=self.device)
        self.model.load()
        module = self.model.module
        trainable = set(_trainable_names(module, cfg.mode, cfg.unfreeze_blocks))
        for name, param in module.named_parameters():
            param.requires_grad_(name in trainable)
        self.train_data = train
        self.images = load_images(train.sources)
        self.val_images = load_images(val.sources) if val is not None else []
        self.augment = (
            train_transform(
                self.base.preprocess_config,
                scale=cfg.crop_scale,
                flip=cfg.flip,
                color_jitter=cfg.color_jitter,
            )
            if cfg.augment
            else None
        )
        self.labels = (
            torch.as_tensor(train.label_ids()) if isinstance(train, LabeledImages) else None
        )

    def parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.model.module.named_parameters() if p.requires_grad]

    def batches(self, rng: random.Random) -> list[list[int]]:
        if self.labels is not None and self.cfg.loss == "triplet":
            return pk_batches(
                self.labels.tolist(), self.cfg.batch_size, self.cfg.samples_per_class, rng
            )
        return random_batches(len(self.images), self.cfg.batch_size, rng)

    def _pixels(self, batch: list[int], *, augment: bool) -> torch.Tensor:
        chunk = [self.images[i] for i in batch]
        if augment and self.augment is not None:
            pixels = torch.stack([self.augment(im) for im in chunk])
        else:
            pixels = self.model.preprocess_batch(chunk)
        return pixels.to(self.device)

    def step_loss(self, batch: list[int], rng: random.Random) -> torch.Tensor:
        a = self.model.forward_images(self._pixels(batch, augment=True))
        if self.cfg.loss == "triplet":
            assert self.labels is not None
            return self._loss(a, None, self.labels[batch].to(self.device))
        if isinstance(self.train_data, CaptionedImages):
            texts = [self.train_data.captions[i] for i in batch]
            return self._loss(a, self.model.forward_texts(texts), None)
        b = self.model.forward_images(self._pixels(batch, augment=True))
        return self._loss(a, b, None)

    def evaluate(self, val: Dataset, *, baseline: bool = False) -> dict[str, float]:
        images = torch.cat(
            [
                self.model.encode_images(self.model.preprocess_batch(chunk)).float().cpu()
                for chunk in batched(self.val_images, self.cfg.batch_size)
            ]
        )
        texts = None
        if isinstance(val, CaptionedImages):
            texts = torch.cat(
                [
                    self.model.encode_texts(list(chunk)).float().cpu()
                    for chunk in batched(val.captions, self.cfg.batch_size)
                ]
            )
        return evaluate(images, texts, val)

    def train_mode(self) -> None:
        module = self.model.module
        module.train()
        # Frozen BatchNorm layers keep their running statistics.
        for sub in module.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in sub.parameters()
            ):
                sub.eval()

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.module.state_dict().items()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        self.model.module.load_state_dict(state)

    def result_encoder(self) -> FineTunedEncoder:
        return self.model


_BLOCK_LIST_NAMES = ("blocks", "resblocks", "layers", "stages")
_AFTER_BLOCKS = ("head.", "text_head.", "pool.")


def _trainable_names(module: nn.Module, mode: Mode, n_blocks: int) -> list[str]:
    """Parameter names trained in ``mode`` (every one in full mode)."""
    names = [n for n, _ in module.named_parameters()]
    if mode == "full":
        return names
    lists = [
        (name, sub)
        for name, sub in module.named_modules()
        if name.rsplit(".", 1)[-1] in _BLOCK_LIST_NAMES
        and isinstance(sub, (nn.Sequential, nn.ModuleList))
        and len(sub) >= 1
    ]
    # Keep outermost lists only (timm efficientnet nests blocks in stages).
    lists = [(n, s) for n, s in lists if not any(n.startswith(o + ".") for o, _ in lists if o != n)]
    if not lists:
        raise ValueError(
            "partial mode cannot find the blocks of this model (no 'blocks', 'resblocks', "
            "'layers' or 'stages' list); use mode='head' or mode='full'"
        )
    trainable: set[str] = set()
    for list_name, blocks in lists:
        first_kept = len(blocks) - max(0, n_blocks)
        for i in range(max(0, first_kept), len(blocks)):
            trainable.update(f"{list_name}.{i}.{n}" for n, _ in blocks[i].named_parameters())
        # Layers after the block list in the same tower (final conv/norm/projection).
        inner = _unwrapped(list_name)
        tower = list_name[: len(list_name) - len(inner)] + inner.split(".")[0]
        seen = False
        for name in names:
            if not name.startswith(tower + "."):
                continue
            if name.startswith(list_name + "."):
                seen = True
            elif seen:
                trainable.add(name)
    trainable.update(n for n in names if _unwrapped(n).startswith(_PARTIAL_ALSO))
    # The encoder's own pooling (GeM's p, attention pooling) and projection heads come after
    # the blocks too; they stayed frozen (a random timm ``embedding_dim`` head included).
    trainable.update(n for n in names if _unwrapped(n).startswith(_AFTER_BLOCKS))
    return [n for n in names if n in trainable]


def _unwrapped(name: str) -> str:
    """``name`` without the ``base.`` prefixes of nested fine-tuned encoders.

    A saved ``local:DIR`` model trained again is wrapped once more, so its head is
    ``base.head.*`` and CLIP's projection ``base.base.visual.proj``: matching only one
    ``base.`` level left them frozen in partial mode.
    """
    while name.startswith("base."):
        name = name[len("base.") :]
    return name
