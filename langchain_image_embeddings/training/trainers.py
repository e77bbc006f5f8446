"""The trainers: a projection head on cached features, or the towers themselves.

Both run the loop of :class:`~langchain_image_embeddings.training.trainer_base.Trainer`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from langchain_image_embeddings.encoders.local import FineTunedEncoder
from langchain_image_embeddings.encoders.pooling import ProjectionHead
from langchain_image_embeddings.training.data import (
    CaptionedImages,
    LabeledImages,
    load_images,
    train_transform,
)

if TYPE_CHECKING:
    from PIL import Image
from langchain_image_embeddings.training.config import (
    Dataset,
    Mode,
)
from langchain_image_embeddings.training.metrics import evaluate
from langchain_image_embeddings.training.sampling import batched, pk_batches, random_batches
from langchain_image_embeddings.training.trainer_base import Trainer

__all__ = ["HeadTrainer", "TowerTrainer"]


# Layers after the last blocks that partial mode also trains (open_clip names).
_PARTIAL_ALSO = ("visual.proj", "visual.ln_post.", "ln_final.", "text_projection")


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
