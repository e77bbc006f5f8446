"""Training really improves retrieval on held-out data (measured, not assumed).

- Triplet training of a projection head on the real EfficientNet-Lite0 weights raises
  validation recall@1 on handwritten digits (``sklearn.datasets.load_digits``, upsampled).
- InfoNCE training of a tiny CLIP on generated captioned shapes raises text-to-image
  recall@1 from chance to well above it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
pytest.importorskip("sklearn")

from PIL import Image  # noqa: E402

from langchain_image_embeddings import ImageEmbeddings  # noqa: E402
from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder  # noqa: E402
from langchain_image_embeddings.training import (  # noqa: E402
    CaptionedImages,
    FineTunedEncoder,
    LabeledImages,
    fit,
    recall_at_k,
)
from langchain_image_embeddings.training.toy_data import (  # noqa: E402
    captioned_shapes,
    digit_images,
    draw_shape,
)

# Tiny models on a shared 2-core machine run far faster on one thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _label_recall(vectors: np.ndarray, labels: list[str]) -> float:
    ids = [sorted(set(labels)).index(label) for label in labels]
    tensor = torch.from_numpy(vectors)
    return recall_at_k(tensor, tensor, ids, ids, ks=(1,), exclude_self=True)[1]


@pytest.mark.slow
def test_triplet_head_on_lite0_raises_heldout_recall(lite0_embeddings: Any, tmp_path: Path) -> None:
    base = lite0_embeddings.encoder
    weights_before = sum(float(p.detach().double().sum()) for p in base.module.parameters())
    train, val = digit_images(per_class=16).split(val_fraction=0.375, seed=0)
    assert len(train) == 100 and len(val) == 60
    metrics_file = tmp_path / "metrics.json"
    result = fit(
        base,
        train,
        val,
        loss="triplet",
        mode="head",
        mining="semihard",
        epochs=15,
        batch_size=40,
        restore_best=False,  # val is not used to pick the epoch: an honest held-out number
        show_progress=False,
        metrics_path=str(metrics_file),
    )
    before = result.baseline["recall_at_1"]
    after = result.history[-1].recall_at_1
    assert after is not None
    assert after >= before + 0.05, (before, after)
    assert result.history[-1].loss < result.history[0].loss
    # The backbone stayed frozen.
    assert sum(float(p.detach().double().sum()) for p in base.module.parameters()) == weights_before
    # The returned encoder really produces the measured vectors end to end (no cache).
    assert isinstance(result.encoder, FineTunedEncoder) and result.encoder.dim == 256
    tuned = ImageEmbeddings(result.encoder, device="cpu", batch_size=30)
    measured = _label_recall(tuned.embed_images_array(val.sources), val.labels)
    assert measured == pytest.approx(after, abs=1 / 60 + 1e-6)
    # Per-epoch metrics were written as JSON.
    saved = json.loads(metrics_file.read_text())
    assert len(saved["history"]) == 15
    assert saved["baseline"]["recall_at_1"] == pytest.approx(before)
    assert {"loss", "recall_at_1", "recall_at_5", "lr"} <= set(saved["history"][0])


@pytest.mark.slow
def test_infonce_full_tiny_clip_text_to_image_recall_well_above_chance(
    fresh_tiny_clip: OpenCLIPEncoder,
) -> None:
    train = captioned_shapes(per_combo=4, seed=0)  # 96 pairs
    val = captioned_shapes(per_combo=1, seed=1)  # 24 unseen images, one per caption
    chance = 1 / len(val)
    result = fit(
        fresh_tiny_clip,
        train,
        val,
        loss="infonce",
        mode="full",
        epochs=30,
        batch_size=32,
        lr=1e-3,
        augment=False,  # captions name colours and sides: no jitter, no flips
        restore_best=False,
        show_progress=False,
    )
    before = result.baseline["recall_at_1"]
    after = result.history[-1].recall_at_1
    assert before <= 2 * chance
    assert after is not None and after >= 5 * chance, (before, after)
    assert result.history[-1].loss < result.history[0].loss
    # Independent check through the public API: text query -> nearest image.
    emb = ImageEmbeddings(result.encoder, device="cpu", batch_size=32)
    images = emb.embed_images_array(val.sources)
    texts = emb.embed_texts_array(val.captions)
    top1 = (texts @ images.T).argmax(1)
    hits = np.mean([val.captions[j] == val.captions[i] for i, j in enumerate(top1)])
    assert hits == pytest.approx(after, abs=1e-6)
    # The temperature was learned, and stays within CLIP's clamp.
    assert 0.01 <= result.extra["temperature"] <= 1.0


def test_partial_mode_trains_only_the_last_blocks(fresh_tiny_clip: OpenCLIPEncoder) -> None:
    data = captioned_shapes(per_combo=2, seed=0)
    module = fresh_tiny_clip.module
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    result = fit(
        fresh_tiny_clip,
        data,
        None,
        loss="infonce",
        mode="partial",
        unfreeze_blocks=1,
        epochs=2,
        batch_size=16,
        lr=1e-3,
        augment=False,
        show_progress=False,
    )
    changed = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("visual.transformer.resblocks.1.") for n in changed)
    assert "visual.proj" in changed
    assert not any(n.startswith("visual.transformer.resblocks.0.") for n in changed)
    assert "visual.conv1.weight" not in changed
    assert result.baseline == {} and len(result.history) == 2
    assert result.history[0].recall_at_1 is None


def test_head_mode_early_stopping_and_self_supervised_views(
    fresh_tiny_clip: OpenCLIPEncoder, photos: dict[str, Image.Image]
) -> None:
    # lr ~ 0: validation recall never improves, so patience=2 stops after 3 epochs.
    train = captioned_shapes(per_combo=2, seed=0)
    val = captioned_shapes(per_combo=1, seed=1)
    stopped = fit(
        fresh_tiny_clip, train, val, loss="infonce", mode="head", epochs=10,
        lr=1e-12, patience=2, augment=False, show_progress=False,
    )  # fmt: skip
    assert len(stopped.history) == 3 and stopped.best_epoch == 1
    assert stopped.encoder.has_text and stopped.encoder.text_head is not None
    # InfoNCE with image-image positives (two augmented views per image), no labels used.
    names = sorted(photos)
    unlabelled = LabeledImages([photos[n] for n in names], names)
    views = fit(
        fresh_tiny_clip, unlabelled, None, loss="infonce", mode="head", epochs=15,
        batch_size=8, embedding_dim=16, head_views=3, show_progress=False,
    )  # fmt: skip
    assert views.encoder.dim == 16 and not views.encoder.has_text
    assert views.history[-1].loss < views.history[0].loss


def test_fit_rejects_mismatched_data(fresh_tiny_clip: OpenCLIPEncoder) -> None:
    data = captioned_shapes(per_combo=1, seed=0)
    with pytest.raises(ValueError, match="infonce"):
        fit(fresh_tiny_clip, data, loss="triplet", show_progress=False)
    with pytest.raises(ValueError, match="loss"):
        fit(fresh_tiny_clip, data, loss="arcface", show_progress=False)


def test_data_formats_and_split(tmp_path: Path) -> None:
    rng = random.Random(0)
    for label in ("cat", "dog"):
        (tmp_path / "classes" / label).mkdir(parents=True)
        for i in range(5):
            draw_shape("red", "circle", "left", rng).save(tmp_path / "classes" / label / f"{i}.png")
    (tmp_path / "classes" / "dog" / "notes.txt").write_text("not an image")
    folder = LabeledImages.from_folder(tmp_path / "classes")
    assert len(folder) == 10 and folder.classes == ["cat", "dog"]
    train, val = folder.split(val_fraction=0.2, seed=0)
    assert sorted(val.labels) == ["cat", "dog"] and len(train) == 8
    assert not set(map(str, train.sources)) & set(map(str, val.sources))

    draw_shape("blue", "square", "right", rng).save(tmp_path / "a.png")
    (tmp_path / "pairs.csv").write_text("image,caption\na.png,a blue square on the right\n")
    (tmp_path / "pairs.jsonl").write_text(
        json.dumps({"image": str(tmp_path / "a.png"), "caption": "a blue square"}) + "\n"
    )
    csv_pairs = CaptionedImages.from_file(tmp_path / "pairs.csv")
    assert csv_pairs.sources == [str(tmp_path / "a.png")]
    assert csv_pairs.captions == ["a blue square on the right"]
    assert CaptionedImages.from_file(tmp_path / "pairs.jsonl").captions == ["a blue square"]
    with pytest.raises(ValueError, match="columns"):
        CaptionedImages.from_file(tmp_path / "pairs.csv", caption_column="text")
    # A missing image, or a broken JSON line, is named with its row when the file is read (it
    # was an "input #5" of the shuffled training split, or a JSON error without a line, later).
    (tmp_path / "gaps.csv").write_text("image,caption\na.png,one\ngone.png,two\n")
    with pytest.raises(ValueError, match=r"gaps.csv row 2: .*gone.png: no such image file"):
        CaptionedImages.from_file(tmp_path / "gaps.csv")
    (tmp_path / "gaps.jsonl").write_text('{"image": "a.png", "caption": "x"}\n\n{"image": \n')
    with pytest.raises(ValueError, match=r"gaps.jsonl line 3: not valid JSON"):
        CaptionedImages.from_file(tmp_path / "gaps.jsonl")


def test_train_transform_uses_the_encoder_preprocessing(fresh_tiny_clip: OpenCLIPEncoder) -> None:
    from langchain_image_embeddings.training.data import train_transform

    config = fresh_tiny_clip.preprocess_config
    augment = train_transform(config, scale=(1.0, 1.0), flip=False, color_jitter=0.0)
    image = Image.new("RGB", (40, 40), (255, 255, 255))
    pixels = augment(image)
    assert tuple(pixels.shape) == (3, *config.input_size)
    expected = [(1.0 - m) / s for m, s in zip(config.mean, config.std, strict=True)]
    assert pixels.mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=1e-4)
