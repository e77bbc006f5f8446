"""The streaming pipeline: order, batch invariance, bounded memory, errors, fast decode."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.devices import (
    autocast_context,
    resolve_precision,
    use_pinned_memory,
)
from langchain_image_embeddings.encoders.base import PreprocessConfig
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import load_image
from langchain_image_embeddings.pipeline import ImagePipeline, PipelineProgress
from langchain_image_embeddings.pipeline._steps import (
    decode_target_size,
    default_num_workers,
    shrink,
)
from tests.unit_tests.image_server import CountingImageServer


def _small_images(photos: dict[str, Image.Image], size: int = 48) -> list[Image.Image]:
    return [image.convert("RGB").resize((size, size)) for image in photos.values()]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


@pytest.fixture(scope="module")
def big_jpegs(
    photos: dict[str, Image.Image], tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """Real photos upscaled to 2000x1500 JPEGs, so that draft decoding actually kicks in."""
    root = tmp_path_factory.mktemp("big_jpegs")
    paths = []
    for name, image in photos.items():
        path = root / f"{name}.jpg"
        image.convert("RGB").resize((2000, 1500), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


# -- ordering and invariance ----------------------------------------------------------------------
def test_results_come_back_in_input_order(
    tiny_clip_encoder: Any, photos: dict[str, Image.Image]
) -> None:
    images = _small_images(photos)
    order = [3, 0, 7, 1, 6, 2, 5, 4, 0, 3]
    emb = ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=3, num_workers=4)
    vectors = emb.embed_images_array([images[i] for i in order])
    singles = np.stack([emb.embed_images_array([image])[0] for image in images])
    np.testing.assert_allclose(vectors, singles[order], atol=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_clip_encoder", "lite0_embeddings"])
def test_batch_size_invariance(
    fixture: str, request: pytest.FixtureRequest, photos: dict[str, Image.Image]
) -> None:
    obj = request.getfixturevalue(fixture)
    encoder = obj if fixture == "tiny_clip_encoder" else obj.encoder
    images = _small_images(photos, size=96)
    results = [
        ImageEmbeddings(encoder, device="cpu", batch_size=bs).embed_images_array(images)
        for bs in (1, 3, 8)
    ]
    assert results[0].shape == (len(images), encoder.dim)
    np.testing.assert_allclose(results[1], results[0], atol=1e-5)
    np.testing.assert_allclose(results[2], results[0], atol=1e-5)


def test_inline_decoding_matches_threaded(
    tiny_clip_encoder: Any, photos: dict[str, Image.Image]
) -> None:
    images = _small_images(photos)
    inline = ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=4, num_workers=0)
    threaded = ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=4, num_workers=3)
    np.testing.assert_allclose(
        inline.embed_images_array(images), threaded.embed_images_array(images), atol=1e-6
    )


# -- bounded memory over a lazy generator ------------------------------------------------------------
def test_lazy_generator_is_consumed_boundedly(tiny_clip_encoder: Any) -> None:
    consumed = 0

    def endless() -> Iterator[np.ndarray]:  # "a million paths": never ends
        nonlocal consumed
        rng = np.random.default_rng(0)
        while True:
            consumed += 1
            yield rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)

    pipeline = ImagePipeline(tiny_clip_encoder, batch_size=4, prefetch_batches=2, num_workers=2)
    bound = pipeline.max_in_flight + pipeline.batch_size
    yielded = 0
    leads = []
    run = pipeline.run(endless())
    for batch in itertools.islice(run, 12):
        yielded += len(batch.indices)
        assert batch.vectors.shape == (4, tiny_clip_encoder.dim)
        leads.append(consumed - yielded)
    run.close()  # stops the workers; must not hang
    assert yielded == 48
    assert max(leads) <= bound, (max(leads), bound)
    assert consumed <= yielded + bound
    assert not [t for t in threading.enumerate() if t.name.startswith("imgemb-decode")]


# -- errors -------------------------------------------------------------------------------------------
def test_skip_mode_reports_every_failure_with_its_index(
    tiny_clip_embeddings: ImageEmbeddings, photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    images: list[Any] = _small_images(photos)
    inputs: list[Any] = list(images)
    inputs.insert(2, str(tmp_path / "missing.jpg"))
    inputs.insert(5, b"not an image")
    inputs.append(str(tmp_path / "missing2.png"))  # a failure after the last full batch
    result = tiny_clip_embeddings.try_embed_images(inputs)
    assert sorted(err.index for err in result.errors) == [2, 5, len(inputs) - 1]  # type: ignore[type-var]
    assert {err.code for err in result.errors} == {"not_found", "unsupported_format"}
    good = [i for i in range(len(inputs)) if i not in (2, 5, len(inputs) - 1)]
    assert result.indices == good
    np.testing.assert_allclose(
        result.vectors, tiny_clip_embeddings.embed_images_array(images), atol=1e-6
    )


def test_raise_mode_names_the_index(tiny_clip_embeddings: ImageEmbeddings, tmp_path: Path) -> None:
    inputs: list[Any] = [np.zeros((8, 8, 3), np.uint8)] * 11 + [str(tmp_path / "nope.jpg")]
    with pytest.raises(ImageLoadError) as info:
        tiny_clip_embeddings.embed_images(inputs)
    assert info.value.index == 11
    assert info.value.code == "not_found"


def test_worker_exceptions_propagate_without_hanging(tiny_clip_encoder: Any) -> None:
    pipeline = ImagePipeline(tiny_clip_encoder, batch_size=2, num_workers=2)
    original = pipeline.prepare_input

    def flaky(source: Any, index: int | None = None) -> Any:
        if index == 7:
            raise RuntimeError("decoder crashed")
        return original(source, index)

    pipeline.prepare_input = flaky  # type: ignore[method-assign]
    outcome: dict[str, BaseException] = {}

    def consume() -> None:
        try:
            list(pipeline.run(np.zeros((8, 8, 3), np.uint8) for _ in range(1000)))
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=consume)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the pipeline hung after a worker exception"
    assert isinstance(outcome.get("error"), RuntimeError)
    assert not [t for t in threading.enumerate() if t.name.startswith("imgemb-decode")]


# -- progress -----------------------------------------------------------------------------------------
def test_progress_callback_and_bar(tiny_clip_encoder: Any, photos: dict[str, Image.Image]) -> None:
    reports: list[PipelineProgress] = []
    inputs: list[Any] = [*_small_images(photos), b"junk"]
    emb = ImageEmbeddings(
        tiny_clip_encoder,
        device="cpu",
        batch_size=3,
        show_progress=True,
        progress_callback=reports.append,
    )
    result = emb.try_embed_images(inputs)
    assert len(result.indices) == len(inputs) - 1
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert reports[-1].done == len(inputs) - 1
    assert reports[-1].failed == 1
    assert reports[-1].total == len(inputs)
    assert reports[-1].images_per_second > 0


# -- fast decode --------------------------------------------------------------------------------------
def test_decode_target_size_follows_the_encoder_config() -> None:
    mean = std = (0.5, 0.5, 0.5)
    assert decode_target_size(PreprocessConfig((224, 224), mean, std)) == (224, 224)
    timm_like = PreprocessConfig((224, 224), mean, std, crop_pct=0.875)
    assert decode_target_size(timm_like) == (256, 256)
    squash = PreprocessConfig((200, 300), mean, std, resize_mode="squash")
    assert decode_target_size(squash) == (300, 200)
    assert decode_target_size(PreprocessConfig((224, 224), mean, std, resize_mode="odd")) is None


def test_draft_decoding_matches_full_decode(
    lite0_embeddings: ImageEmbeddings, big_jpegs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import langchain_image_embeddings.pipeline._stream as pipeline_module

    sizes: list[tuple[int, int]] = []

    def recording_load(*args: Any, **kwargs: Any) -> Image.Image:
        image = load_image(*args, **kwargs)
        sizes.append(image.size)
        return image

    monkeypatch.setattr(pipeline_module, "load_image", recording_load)
    fast = ImageEmbeddings(lite0_embeddings.encoder, device="cpu", batch_size=8)
    full = ImageEmbeddings(lite0_embeddings.encoder, device="cpu", batch_size=8, fast_decode=False)
    fast_vectors = fast.embed_images_array([str(p) for p in big_jpegs])
    assert sizes and all(size == (1000, 750) for size in sizes), sizes  # DCT scale 1/2 used
    sizes.clear()
    full_vectors = full.embed_images_array([str(p) for p in big_jpegs])
    assert all(size == (2000, 1500) for size in sizes), sizes
    cosines = _cosines(fast_vectors, full_vectors)
    assert cosines.min() >= 0.998, cosines


def test_reduce_for_other_formats(
    lite0_embeddings: ImageEmbeddings, photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    paths = []
    for name in ("astronaut", "coffee"):
        path = tmp_path / f"{name}.png"
        big = photos[name].convert("RGB").resize((2400, 1800), Image.BICUBIC)
        big.save(path, compress_level=1)
        paths.append(str(path))
    assert shrink(load_image(paths[0]), (256, 256)).size == (800, 600)  # factor 3 keeps >= 512
    assert shrink(load_image(paths[0]), (700, 700)).size == (2400, 1800)  # would go below 2x
    fast = ImageEmbeddings(lite0_embeddings.encoder, device="cpu").embed_images_array(paths)
    full = ImageEmbeddings(
        lite0_embeddings.encoder, device="cpu", fast_decode=False
    ).embed_images_array(paths)
    assert _cosines(fast, full).min() >= 0.998


def test_exif_rotated_jpeg_with_draft(
    lite0_embeddings: ImageEmbeddings, photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    # Stored 4000x1000, EXIF orientation 6 (rotate 90° clockwise): displayed 1000x4000.
    stored = photos["rocket"].convert("RGB").resize((4000, 1000), Image.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=92, exif=exif)
    full = load_image(path)
    assert full.size == (1000, 4000)

    # Display-oriented target (900, 400) is only covered if the size is swapped for the
    # stored pixels; an unswapped request would pick 1/2 scale and give 500 px of width.
    covered = load_image(path, draft_size=(900, 400))
    assert covered.width >= 900 and covered.height >= 400

    reduced = load_image(path, draft_size=(250, 1000))
    assert reduced.size == (250, 1000)  # 1/4 DCT scale, then rotated
    expected = np.asarray(full.resize(reduced.size, Image.BOX), dtype=np.float32)
    assert np.abs(np.asarray(reduced, dtype=np.float32) - expected).mean() < 6.0

    fast = ImageEmbeddings(lite0_embeddings.encoder, device="cpu").embed_images_array([path])
    ref = ImageEmbeddings(
        lite0_embeddings.encoder, device="cpu", fast_decode=False
    ).embed_images_array([path])
    assert _cosines(fast, ref).min() >= 0.998


def test_non_jpeg_is_box_reduced_before_conversion(
    photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    # No DCT draft for PNG: the decoded image is box-reduced by the largest integer factor
    # that keeps draft_size (600x400 -> factor 25 -> 24x16), before any mode conversion.
    path = tmp_path / "a.png"
    photos["coffee"].convert("RGBA").save(path)
    reduced = load_image(path, draft_size=(16, 16))
    assert reduced.size == (24, 16) and reduced.mode == "RGB"
    assert load_image(path, draft_size=(400, 400)).size == photos["coffee"].size  # factor 1


# -- CUDA decisions, exercised on CPU -----------------------------------------------------------------
def test_precision_and_pinning_decisions() -> None:
    import torch

    assert resolve_precision("auto", "cpu") is None  # never half precision on CPU by default
    assert resolve_precision("auto", "mps") is None
    assert resolve_precision("auto", "cuda") is torch.float16
    assert resolve_precision("auto", "cuda:1") is torch.float16
    assert resolve_precision("fp32", "cuda") is None
    assert resolve_precision("bf16", "cpu") is torch.bfloat16
    assert resolve_precision("fp16", "cpu") is torch.float16
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", "cpu")
    assert use_pinned_memory("cpu") is False
    assert use_pinned_memory("cuda") is torch.cuda.is_available()
    assert default_num_workers("cuda") >= 2
    assert 1 <= default_num_workers("cpu") <= 8
    with autocast_context("cpu", torch.bfloat16):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.bfloat16
    with autocast_context("cpu", None):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.float32


def test_autocast_path_on_cpu(tiny_clip_encoder: Any, photos: dict[str, Image.Image]) -> None:
    images = _small_images(photos)
    fp32 = ImagePipeline(tiny_clip_encoder, precision="fp32")
    bf16 = ImagePipeline(tiny_clip_encoder, precision="bf16")
    assert fp32.autocast_dtype is None and fp32.pin_memory is False
    a = np.concatenate([b.vectors for b in fp32.run(images)])
    b = np.concatenate([b.vectors for b in bf16.run(images)])
    assert b.dtype == np.float32  # outputs are always float32
    assert not np.array_equal(a, b)  # bf16 autocast really ran
    assert _cosines(a, b).min() > 0.95
    with pytest.raises(ValueError):
        ImageEmbeddings(tiny_clip_encoder, device="cpu", precision="fp8")


def test_text_batches_unchanged_by_batching(tiny_clip_encoder: Any) -> None:
    texts = [f"a photo of thing number {i}" for i in range(10)]
    batched = ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=4)
    single = ImageEmbeddings(tiny_clip_encoder, device="cpu", batch_size=1)
    np.testing.assert_allclose(
        batched.embed_texts_array(texts), single.embed_texts_array(texts), atol=1e-5
    )


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGB"])
def test_draft_works_for_every_jpeg_mode(mode: str) -> None:
    import io

    buffer = io.BytesIO()
    Image.new(mode, (2000, 1600)).save(buffer, format="JPEG")
    image = load_image(buffer.getvalue(), draft_size=(300, 300))
    assert image.mode == "RGB"
    assert image.size == (500, 400)  # 1/4 scale: the smallest still covering 300 px


@pytest.mark.parametrize("fixture", ["tiny_clip_encoder", "lite0_embeddings"])
def test_split_transform_matches_the_encoders_own(
    fixture: str, request: pytest.FixtureRequest, photos: dict[str, Image.Image]
) -> None:
    import torch

    obj = request.getfixturevalue(fixture)
    encoder = obj if fixture == "tiny_clip_encoder" else obj.encoder
    pipeline = ImagePipeline(encoder, fast_decode=False)
    images = [photos["chelsea"].convert("RGB"), photos["camera"].convert("RGB")]
    # Workers hand back uint8 arrays: no torch ops (and no OpenMP teams) in decode threads.
    prepared = [pipeline.prepare_input(image) for image in images]
    assert all(isinstance(item, np.ndarray) and item.dtype == np.uint8 for item in prepared)
    expected = torch.stack([encoder.preprocess(image) for image in images])
    torch.testing.assert_close(pipeline.forward_pixels(expected), pipeline.forward(prepared))
    batched = pipeline._collate(prepared)
    torch.testing.assert_close(batched, expected, atol=1e-6, rtol=0)


# -- one read: hash what is decoded ---------------------------------------------------------------
def _encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    import io

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def image_server(photos: dict[str, Image.Image]) -> Iterator[CountingImageServer]:
    served = {"/cat.png": _encoded(photos["chelsea"].resize((64, 48)))}
    server = CountingImageServer(served)
    try:
        yield server
    finally:
        server.close()


def test_an_image_source_is_fetched_once_and_the_hash_is_of_the_bytes_embedded(
    tiny_clip_encoder: Any, image_server: CountingImageServer
) -> None:
    import hashlib

    from langchain_image_embeddings.images import ImageLoadOptions, read_image_source

    options = ImageLoadOptions(allow_remote=True, allowed_hosts=("127.0.0.1",))
    url = image_server.url("/cat.png")
    served = image_server.files["/cat.png"]
    served_hash = hashlib.sha256(served).hexdigest()

    source = read_image_source(url, options)  # describe: the one download
    assert image_server.requests == {"/cat.png": 1}
    assert source.data == served and source.sha256 == served_hash
    assert source.metadata["source"] == url and source.metadata["bytes"] == len(served)
    assert (source.metadata["width"], source.metadata["height"]) == (64, 48)

    pipeline = ImagePipeline(tiny_clip_encoder, load_options=options, num_workers=2)
    (batch,) = list(pipeline.run([source], hash_inputs=True))  # embed: no second download
    assert image_server.requests == {"/cat.png": 1}
    assert batch.indices == [0] and batch.sha256 == [served_hash]
    np.testing.assert_allclose(batch.vectors, next(iter(pipeline.run([served]))).vectors, atol=1e-6)

    emb = ImageEmbeddings(tiny_clip_encoder, device="cpu", load_options=options)
    result = emb.try_embed_images([source], hash_inputs=True)
    assert result.ok and result.sha256 == [served_hash]
    assert image_server.requests == {"/cat.png": 1}

    # The counter sees downloads: embedding the URL itself fetches it again.
    by_url = emb.try_embed_images([url], hash_inputs=True)
    assert image_server.requests == {"/cat.png": 2} and by_url.sha256 == [served_hash]


@pytest.mark.parametrize("gpu_decode", [False, True])
def test_hash_inputs_reports_the_bytes_each_row_was_decoded_from(
    tiny_clip_encoder: Any, photos: dict[str, Image.Image], tmp_path: Path, gpu_decode: bool
) -> None:
    import base64
    import hashlib

    from langchain_image_embeddings.images import read_image_source

    if gpu_decode:
        from langchain_image_embeddings.pipeline._gpu_decode import torchvision_can_decode

        if not torchvision_can_decode("cpu"):
            pytest.skip("torchvision cannot decode JPEGs here")
    jpeg = _encoded(photos["chelsea"].resize((80, 60)), "JPEG")
    png = _encoded(photos["coffee"].resize((40, 30)))
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg)
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode()
    pil = photos["camera"].convert("RGB").resize((32, 32))
    inputs: list[Any] = [str(path), png, data_uri, pil, read_image_source(path), "missing.png"]
    pipeline = ImagePipeline(
        tiny_clip_encoder, batch_size=2, num_workers=2, on_error="skip", gpu_decode=gpu_decode
    )
    rows: dict[int, str | None] = {}
    errors = []
    for batch in pipeline.run(inputs, hash_inputs=True):
        assert batch.sha256 is not None and len(batch.sha256) == len(batch.indices)
        rows.update(zip(batch.indices, batch.sha256, strict=True))
        errors += batch.errors
    digest = {name: hashlib.sha256(data).hexdigest() for name, data in [("j", jpeg), ("p", png)]}
    assert rows == {0: digest["j"], 1: digest["p"], 2: digest["p"], 3: None, 4: digest["j"]}
    assert [(e.index, e.code) for e in errors] == [(5, "not_found")]
    plain = list(pipeline.run(inputs[:4]))
    assert all(batch.sha256 is None for batch in plain)  # not asked: nothing reported
    hashed = np.concatenate([b.vectors for b in pipeline.run(inputs[:4], hash_inputs=True)])
    np.testing.assert_allclose(hashed, np.concatenate([b.vectors for b in plain]), atol=1e-5)


def test_plain_runs_hash_nothing(
    tiny_clip_encoder: Any, photos: dict[str, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    import langchain_image_embeddings.pipeline._stream as stream

    class NoHashing:
        def sha256(self, *args: Any) -> Any:
            raise AssertionError("a plain run hashed its inputs")

    monkeypatch.setattr(stream, "hashlib", NoHashing())
    emb = ImageEmbeddings(tiny_clip_encoder, device="cpu", num_workers=2)
    images = [_encoded(image.resize((32, 32))) for image in photos.values()]
    assert emb.embed_images_array(images).shape == (len(images), tiny_clip_encoder.dim)
    with pytest.raises(AssertionError, match="hashed"):
        emb.try_embed_images(images[:1], hash_inputs=True)


def test_a_file_changed_between_read_and_decode_is_caught(
    tiny_clip_encoder: Any, photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    import hashlib

    from langchain_image_embeddings.images import read_image_source

    path = tmp_path / "photo.png"
    before = _encoded(photos["chelsea"].resize((48, 48)))
    path.write_bytes(before)
    source = read_image_source(path)  # described: its hash recorded
    after = _encoded(photos["coffee"].resize((48, 48)))
    path.write_bytes(after)  # rewritten before it is embedded

    emb = ImageEmbeddings(tiny_clip_encoder, device="cpu", num_workers=2)
    other = tmp_path / "other.png"
    other.write_bytes(before)
    result = emb.try_embed_images(
        [str(path), str(other)], expected_sha256=[source.sha256, source.sha256]
    )
    assert result.indices == [1] and result.sha256 == [source.sha256]
    (error,) = result.errors
    assert (error.index, error.code, error.source) == (0, "changed", str(path))
    assert "changed since they were read" in error.reason

    # hash_inputs alone reports the hash of what was decoded: the new bytes, not the recorded.
    reported = emb.try_embed_images([str(path)], hash_inputs=True).sha256
    assert reported == [hashlib.sha256(after).hexdigest()] != [source.sha256]

    pipeline = ImagePipeline(tiny_clip_encoder, on_error="raise")
    with pytest.raises(ImageLoadError) as raised:
        list(pipeline.run([str(path)], expected_sha256=[source.sha256]))
    assert raised.value.code == "changed" and raised.value.index == 0

    # The source read earlier still embeds the bytes it was described from.
    kept = emb.try_embed_images([source], expected_sha256=[source.sha256])
    np.testing.assert_allclose(kept.vectors, emb.embed_images_array([before]), atol=1e-6)


def test_expected_hashes_must_match_the_inputs(tiny_clip_encoder: Any) -> None:
    emb = ImageEmbeddings(tiny_clip_encoder, device="cpu")
    with pytest.raises(ValueError, match="2 entries for 1 inputs"):
        emb.try_embed_images(["a.png"], expected_sha256=["0" * 64, None])
    pil = Image.new("RGB", (16, 16))
    result = emb.try_embed_images([pil], expected_sha256=["0" * 64])
    assert [e.code for e in result.errors] == ["invalid_input"]
    assert emb.try_embed_images([pil], expected_sha256=[None]).sha256 == [None]
