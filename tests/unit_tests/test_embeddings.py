"""``ImageEmbeddings``: the LangChain face (shapes, types, errors, async, batching)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from langchain_image_embeddings import EncoderError, ImageEmbeddings, ImageLoadError
from langchain_image_embeddings.devices import resolve_device
from langchain_image_embeddings.embeddings import DEFAULT_MODEL


def test_default_model_is_clip_vit_b32_and_construction_loads_nothing() -> None:
    embeddings = ImageEmbeddings()
    assert embeddings.model == DEFAULT_MODEL == "open_clip:ViT-B-32"
    assert embeddings._encoder is None


def test_embed_image_signature_returns_python_floats(lite0_embeddings, photos_dir: Path) -> None:  # type: ignore[no-untyped-def]
    uris = [str(photos_dir / "chelsea.jpg"), (photos_dir / "coffee.jpg").as_uri()]
    vectors = lite0_embeddings.embed_image(uris=uris)
    assert isinstance(vectors, list) and len(vectors) == 2
    assert all(type(x) is float for x in vectors[0])
    assert len(vectors[0]) == lite0_embeddings.dim == 1280
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


def test_mixed_input_kinds_in_one_batch(lite0_embeddings, photos, photos_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = photos_dir / "rocket.jpg"
    data = path.read_bytes()
    pil = Image.open(path)
    vectors = np.array(
        lite0_embeddings.embed_images([str(path), path, data, pil, np.asarray(pil.convert("RGB"))])
    )
    assert vectors.shape == (5, 1280)
    assert np.abs(vectors - vectors[0]).max() < 1e-5  # the same file, five ways


def test_unnormalized_vectors(lite0_embeddings, photos) -> None:  # type: ignore[no-untyped-def]
    raw = ImageEmbeddings(lite0_embeddings.encoder, device="cpu", normalize=False)
    vector = np.array(raw.embed_images([photos["coffee"]])[0])
    assert np.linalg.norm(vector) > 2.0
    normalized = np.array(lite0_embeddings.embed_images([photos["coffee"]])[0])
    assert np.abs(vector / np.linalg.norm(vector) - normalized).max() < 1e-5


def test_image_only_model_refuses_text_clearly(lite0_embeddings) -> None:  # type: ignore[no-untyped-def]
    assert not lite0_embeddings.supports_text
    with pytest.raises(EncoderError, match="has no text tower: it embeds images only"):
        lite0_embeddings.embed_query("a cat")


def test_clip_embeds_text_into_the_image_space(tiny_clip_embeddings) -> None:  # type: ignore[no-untyped-def]
    assert tiny_clip_embeddings.supports_text
    docs = tiny_clip_embeddings.embed_documents(["a cat", "a dog", "a rocket"])
    query = tiny_clip_embeddings.embed_query("a dog")
    assert len(docs) == 3 and len(query) == tiny_clip_embeddings.dim == 32
    assert np.abs(np.array(query) - np.array(docs[1])).max() < 1e-5
    image = tiny_clip_embeddings.embed_images([Image.new("RGB", (40, 40), "red")])[0]
    assert len(image) == len(query)


def test_text_batches_match_one_by_one(tiny_clip_encoder) -> None:  # type: ignore[no-untyped-def]
    texts = [f"caption number {i}" for i in range(7)]
    batched = ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=3).embed_documents(texts)
    single = [ImageEmbeddings(tiny_clip_encoder, device="cpu").embed_query(t) for t in texts]
    assert np.abs(np.array(batched) - np.array(single)).max() < 1e-5


def test_empty_inputs(lite0_embeddings) -> None:  # type: ignore[no-untyped-def]
    assert lite0_embeddings.embed_images([]) == []
    assert lite0_embeddings.embed_images_array([]).shape == (0, 1280)


def test_bad_input_names_its_index(lite0_embeddings, photos_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = str(photos_dir / "chelsea.jpg")
    with pytest.raises(ImageLoadError) as info:
        lite0_embeddings.embed_images([good, good, str(tmp_path / "missing.png")])
    assert info.value.index == 2 and info.value.code == "not_found"
    assert str(info.value).startswith("input #2 ")


def test_try_embed_images_skips_and_reports(
    lite0_embeddings, photos_dir: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    good = str(photos_dir / "coffee.jpg")
    result = lite0_embeddings.try_embed_images([str(empty), good, "ftp://x/y.jpg", good])
    assert not result.ok
    assert result.indices == [1, 3]
    assert result.vectors.shape == (2, 1280)
    assert [(e.index, e.code) for e in result.errors] == [(0, "empty"), (2, "unsupported_scheme")]


def test_generator_input_is_consumed_lazily(lite0_embeddings, photos_dir: Path) -> None:  # type: ignore[no-untyped-def]
    consumed = 0
    path = str(photos_dir / "chelsea.jpg")

    def paths() -> Iterator[str]:
        nonlocal consumed
        for _ in range(10_000):
            consumed += 1
            yield path

    embeddings = ImageEmbeddings(lite0_embeddings.encoder, device="cpu", batch_size=4)
    first = next(iter(embeddings.iter_image_batches(paths())))
    assert first.shape == (4, 1280)
    assert consumed < 100  # far from the 10,000 the generator could produce


def test_async_matches_sync(tiny_clip_embeddings) -> None:  # type: ignore[no-untyped-def]
    image = Image.new("RGB", (64, 48), "blue")

    async def run() -> tuple[list[list[float]], list[float], list[list[float]]]:
        return (
            await tiny_clip_embeddings.aembed_images([image]),
            await tiny_clip_embeddings.aembed_query("blue"),
            await tiny_clip_embeddings.aembed_documents(["blue"]),
        )

    images, query, docs = asyncio.run(run())
    assert np.allclose(images, tiny_clip_embeddings.embed_images([image]), atol=1e-6)
    assert np.allclose(query, docs[0], atol=1e-6)


def test_device_resolution() -> None:
    import torch

    assert resolve_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto") in ("cpu", "mps")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:1")
    else:  # pragma: no cover - GPU machines
        assert resolve_device("auto") == expected
    # A malformed string is refused as the docstring says (ValueError naming the choices),
    # at construction too, not by torch at first use.
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu'"):
        resolve_device("gpu9")
    with pytest.raises(ValueError, match="not 'gpu'"):
        ImageEmbeddings("timm:efficientnet_lite0", device="gpu")


def test_invalid_batch_size() -> None:
    with pytest.raises(ValueError):
        ImageEmbeddings("timm:efficientnet_lite0", batch_size=0)


# -- regressions found by probing (round 4) -----------------------------------------------------
def test_one_image_instead_of_a_list_is_refused_by_name(
    tiny_clip_embeddings: ImageEmbeddings, photos_dir: Path
) -> None:
    # embed_image("cat.jpg") iterated the characters ("input #0 c: no such file"), bytes
    # gave ints, and a PIL image or a Path a raw "object is not iterable".
    path = photos_dir / "chelsea.jpg"
    from langchain_image_embeddings.images import read_image_source

    singles = (str(path), path, path.read_bytes(), Image.open(path), path.open("rb"))
    for single in (*singles, read_image_source(path)):
        with pytest.raises(TypeError, match=r"expected a list of images.*pass it in a list"):
            tiny_clip_embeddings.embed_images(single)
    with pytest.raises(TypeError, match=r"single str \(.*chelsea.jpg\)"):
        tiny_clip_embeddings.embed_image(str(path))
    with pytest.raises(TypeError):
        tiny_clip_embeddings.try_embed_images(str(path))
    # A 4-D array is a batch of images, as before.
    assert len(tiny_clip_embeddings.embed_images(np.zeros((2, 8, 8, 3), np.uint8))) == 2


def test_texts_must_be_a_list_of_strings(tiny_clip_embeddings: ImageEmbeddings) -> None:
    # embed_documents("abc") embedded "a", "b", "c"; a non-str item failed deep inside the
    # tokenizer ("object of type 'int' has no len()").
    with pytest.raises(TypeError, match="use embed_query"):
        tiny_clip_embeddings.embed_documents("a cat")
    with pytest.raises(TypeError, match="text #1 is int, not str"):
        tiny_clip_embeddings.embed_documents(["a cat", 3])


def test_a_failing_file_object_is_reported_not_raised(
    tiny_clip_embeddings: ImageEmbeddings, photos_dir: Path
) -> None:
    import io

    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    good = str(photos_dir / "chelsea.jpg")
    result = tiny_clip_embeddings.try_embed_images([good, Failing(), good])
    assert result.indices == [0, 2]
    assert [(e.index, e.code) for e in result.errors] == [(1, "not_found")]


def test_truncated_photo_embeds_with_allow_truncated(
    photos_dir: Path, tiny_clip_encoder: Any
) -> None:
    # The pipeline's fast decode passes a draft size: with allow_truncated that raised a raw
    # "I/O operation on closed file" out of every embedding call.
    from langchain_image_embeddings import ImageLoadOptions

    data = (photos_dir / "chelsea.jpg").read_bytes()
    cut = data[: len(data) * 3 // 4]
    for fast in (True, False):
        embeddings = ImageEmbeddings(
            tiny_clip_encoder,
            device="cpu",
            fast_decode=fast,
            load_options=ImageLoadOptions(allow_truncated=True),
        )
        whole, partial = np.asarray(embeddings.embed_images([data, cut]))
        assert np.isfinite(partial).all() and float(whole @ partial) > 0.9
    refused = ImageEmbeddings(tiny_clip_encoder, device="cpu").try_embed_images([cut])
    assert [e.code for e in refused.errors] == ["truncated"]
