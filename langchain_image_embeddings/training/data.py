"""Training data: labelled image folders, (image, caption) files, splits and augmentations.

- :class:`LabeledImages`: one sub-folder per label (``root/<label>/<image>``) or any list of
  ``(image, label)``; for metric learning (:class:`~.losses.TripletLoss`).
- :class:`CaptionedImages`: a CSV or JSONL of ``(image, caption)`` pairs; for CLIP-style
  training (:class:`~.losses.InfoNCELoss`).
- :func:`train_transform`: retrieval-sensible augmentations (random resized crop, flip,
  colour jitter) built on the encoder's own :class:`PreprocessConfig` (size, mean, std,
  interpolation), so training sees exactly the normalisation inference uses.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.images import (
    IMAGE_SUFFIXES,
    ImageInput,
    ImageLoadOptions,
    load_image,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from langchain_image_embeddings.encoders.base import PreprocessConfig

__all__ = ["CaptionedImages", "LabeledImages", "load_images", "train_transform"]


def _split_indices(
    groups: Sequence[str], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Stratified split: ``val_fraction`` of each group (at least one where it has two)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    rng = random.Random(seed)
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    train: list[int] = []
    val: list[int] = []
    for g in sorted(by_group):
        idx = by_group[g]
        rng.shuffle(idx)
        n_val = round(len(idx) * val_fraction)
        if val_fraction > 0 and n_val == 0 and len(idx) >= 2:
            n_val = 1
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return sorted(train), sorted(val)


@dataclass
class LabeledImages:
    """Images with class labels, for metric learning.

    Attributes:
        sources: Image inputs (paths, URIs, PIL images, arrays: anything ``load_image`` takes).
        labels: One label per image.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.training.data import LabeledImages

            data = LabeledImages.from_folder("catalogue/")  # catalogue/<label>/<image>
            train, val = data.split(val_fraction=0.2, seed=0)
    """

    sources: list[ImageInput]
    labels: list[str]

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.labels):
            raise ValueError("sources and labels must have the same length")

    def __len__(self) -> int:
        return len(self.sources)

    @classmethod
    def from_folder(
        cls, root: str | os.PathLike[str], *, suffixes: Sequence[str] = IMAGE_SUFFIXES
    ) -> LabeledImages:
        """Read ``root/<label>/<image>`` (files in nested folders count for ``<label>``)."""
        base = Path(root).expanduser()
        if not base.is_dir():
            raise FileNotFoundError(f"{base} is not a directory of class folders")
        sources: list[ImageInput] = []
        labels: list[str] = []
        wanted = {s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes}
        for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for file in sorted(sub.rglob("*")):
                # Hidden files and folders are skipped, as the folder loader does: macOS
                # "._x.jpg" resource forks are not images and failed mid-training.
                hidden = any(part.startswith(".") for part in file.relative_to(sub).parts)
                if not hidden and file.is_file() and file.suffix.lower() in wanted:
                    sources.append(str(file))
                    labels.append(sub.name)
        if not sources:
            raise ValueError(f"no images found in class folders under {base}")
        return cls(sources, labels)

    @property
    def classes(self) -> list[str]:
        """Sorted distinct labels."""
        return sorted(set(self.labels))

    def label_ids(self) -> list[int]:
        """Labels as integers (index in :attr:`classes`)."""
        index = {c: i for i, c in enumerate(self.classes)}
        return [index[label] for label in self.labels]

    def subset(self, indices: Sequence[int]) -> LabeledImages:
        """The images at ``indices``."""
        return LabeledImages([self.sources[i] for i in indices], [self.labels[i] for i in indices])

    def split(
        self, val_fraction: float = 0.2, seed: int = 0
    ) -> tuple[LabeledImages, LabeledImages]:
        """Stratified train/validation split (every label keeps images on both sides)."""
        train, val = _split_indices(self.labels, val_fraction, seed)
        return self.subset(train), self.subset(val)


@dataclass
class CaptionedImages:
    """``(image, caption)`` pairs, for CLIP-style (InfoNCE) training.

    Attributes:
        sources: Image inputs.
        captions: One caption per image.

    Example:
        .. code-block:: python

            from langchain_image_embeddings.training.data import CaptionedImages

            pairs = CaptionedImages.from_file("captions.csv")  # columns: image, caption
            train, val = pairs.split(val_fraction=0.1)
    """

    sources: list[ImageInput]
    captions: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.captions):
            raise ValueError("sources and captions must have the same length")

    def __len__(self) -> int:
        return len(self.sources)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        image_column: str = "image",
        caption_column: str = "caption",
    ) -> CaptionedImages:
        """Read a ``.csv`` (with a header) or ``.jsonl`` file of pairs.

        Relative image paths are resolved against the file's directory.
        """
        file = Path(path).expanduser()
        rows: list[dict[str, Any]]
        # utf-8-sig: spreadsheet exports start with a byte-order mark, which otherwise
        # became part of the first column's name ("needs columns 'image'").
        if file.suffix.lower() == ".csv":
            with file.open(newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        elif file.suffix.lower() in (".jsonl", ".ndjson"):
            with file.open(encoding="utf-8-sig") as fh:
                rows = [_json_row(file, n, line) for n, line in enumerate(fh, 1) if line.strip()]
        else:
            raise ValueError(f"{file}: expected a .csv or .jsonl file of (image, caption) pairs")
        sources: list[ImageInput] = []
        captions: list[str] = []
        for n, row in enumerate(rows, start=1):
            if image_column not in row or caption_column not in row:
                raise ValueError(
                    f"{file} row {n}: needs columns {image_column!r} and {caption_column!r}"
                )
            image = _cell(file, n, row, image_column)
            caption = _cell(file, n, row, caption_column)
            if "://" not in image and not image.startswith("data:"):
                candidate = Path(image).expanduser()
                image = str(candidate if candidate.is_absolute() else file.parent / candidate)
                if not Path(image).is_file():  # said now, with its row, not after an epoch
                    raise ValueError(f"{file} row {n}: {image}: no such image file")
            sources.append(image)
            captions.append(caption)
        if not sources:
            raise ValueError(f"{file} holds no pairs")
        return cls(sources, captions)

    def subset(self, indices: Sequence[int]) -> CaptionedImages:
        """The pairs at ``indices``."""
        return CaptionedImages(
            [self.sources[i] for i in indices], [self.captions[i] for i in indices]
        )

    def split(
        self, val_fraction: float = 0.2, seed: int = 0
    ) -> tuple[CaptionedImages, CaptionedImages]:
        """Random train/validation split of the pairs."""
        train, val = _split_indices(["all"] * len(self), val_fraction, seed)
        return self.subset(train), self.subset(val)


def _cell(file: Path, n: int, row: Mapping[Any, Any], column: str) -> str:
    """One text cell of a pair file; a missing, empty or non-text value names its row."""
    if None in row:  # csv.DictReader puts the cells beyond the header under the key None
        raise ValueError(
            f"{file} row {n}: more cells than columns (quote a caption that holds a comma)"
        )
    value = row[column]
    if not isinstance(value, str):
        # A short CSV row gives None, a JSON null or list would be read as "None" or "['a']".
        kind = "missing" if value is None else f"not text ({type(value).__name__})"
        raise ValueError(f"{file} row {n}: {column!r} is {kind}")
    if not value.strip():
        raise ValueError(f"{file} row {n}: {column!r} is empty")
    return value


def _json_row(file: Path, line_number: int, line: str) -> dict[str, Any]:
    """One JSON-lines object; a malformed line is named by its line number in ``file``."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} line {line_number}: not valid JSON ({exc.msg})") from exc
    if not isinstance(row, dict):
        raise ValueError(f"{file} line {line_number}: expected a JSON object")
    return row


def load_images(
    sources: Sequence[ImageInput], options: ImageLoadOptions | None = None
) -> list[Image.Image]:
    """Decode every source to RGB (errors name the failing index)."""
    return [load_image(s, options, index=i) for i, s in enumerate(sources)]


_INTERPOLATIONS = {"nearest", "bilinear", "bicubic", "box", "hamming", "lanczos"}


def train_transform(
    config: PreprocessConfig,
    *,
    scale: tuple[float, float] = (0.5, 1.0),
    flip: bool = True,
    color_jitter: float = 0.2,
) -> Callable[[Image.Image], torch.Tensor]:
    """Augmentations for retrieval training on top of the encoder's preprocessing.

    Random resized crop to the encoder's ``input_size`` (with its interpolation), random
    horizontal flip, colour jitter (brightness, contrast, saturation; hue at a quarter of
    the strength), then ``ToTensor`` and the encoder's ``mean``/``std``.

    Args:
        config: ``encoder.preprocess_config``.
        scale: Area range of the random crop.
        flip: Random horizontal flips (turn off when left/right matters, e.g. text or captions
            that say "on the left").
        color_jitter: Strength; ``0`` disables it (keep it low when captions name colours).

    Example:
        .. code-block:: python

            from langchain_image_embeddings.training.data import train_transform

            augment = train_transform(encoder.preprocess_config, flip=False)
            pixels = augment(pil_image)  # (3, H, W), normalised like encoder.preprocess
    """
    from torchvision import transforms as T

    interpolation = config.interpolation if config.interpolation in _INTERPOLATIONS else "bicubic"
    mode = T.InterpolationMode(interpolation)
    steps: list[Any] = [T.RandomResizedCrop(config.input_size, scale=scale, interpolation=mode)]
    if flip:
        steps.append(T.RandomHorizontalFlip())
    if color_jitter > 0:
        steps.append(
            T.ColorJitter(color_jitter, color_jitter, color_jitter, min(0.5, color_jitter / 4))
        )
    steps += [T.ToTensor(), T.Normalize(config.mean, config.std)]
    composed: Callable[[Image.Image], torch.Tensor] = T.Compose(steps)
    return composed
