"""GPU JPEG decoding, checked on the CPU: the device code (decode_jpeg + resize + crop +
normalise) is parametrised by device, so ``gpu_decode=True`` on a CPU model runs it here.

Equivalence with the PIL path, the on/off decision, and the fallbacks (other formats,
CMYK, files the decoder rejects, truncated and corrupt files with the CPU path's error)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from langchain_image_embeddings import ImageEmbeddings
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import ImageLoadOptions
from langchain_image_embeddings.pipeline import ImagePipeline
from langchain_image_embeddings.pipeline import _gpu_decode as gpu_module
from langchain_image_embeddings.pipeline._gpu_decode import (
    DeviceJpegDecoder,
    TensorPreprocess,
    apply_orientation,
    inspect_jpeg,
    resolve_gpu_decode,
    torchvision_can_decode,
)


def _jpeg(image: Image.Image, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


def _run(pipeline: ImagePipeline, inputs: list[Any]) -> tuple[np.ndarray, list[int], list[Any]]:
    vectors, indices, errors = [], [], []
    for batch in pipeline.run(inputs):
        vectors.append(batch.vectors)
        indices.extend(batch.indices)
        errors.extend(batch.errors)
    return np.concatenate(vectors), indices, errors


@pytest.fixture(scope="module")
def hd_jpegs(
    photos: dict[str, Image.Image], tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """The real skimage photos, upscaled to 1920x1080 and re-encoded as JPEG."""
    root = tmp_path_factory.mktemp("hd_jpegs")
    paths = []
    for name, image in photos.items():
        path = root / f"{name}.jpg"
        image.convert("RGB").resize((1920, 1080), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def lite0_encoder(lite0_embeddings: ImageEmbeddings) -> Any:
    return lite0_embeddings.encoder


# -- the decision ------------------------------------------------------------------------------
def test_decision_auto_on_for_cuda_only_and_switchable(lite0_encoder: Any) -> None:
    plan = TensorPreprocess.from_transform(lite0_encoder.transform)
    assert plan is not None

    def yes(device: str) -> bool:
        return True

    def no(device: str) -> bool:
        return False

    assert resolve_gpu_decode(None, "cuda", plan, supported=yes) is True
    assert resolve_gpu_decode(None, "cuda:1", plan, supported=yes) is True
    assert resolve_gpu_decode(None, "cuda", plan, supported=no) is False  # old torchvision
    assert resolve_gpu_decode(None, "cuda", None, supported=yes) is False  # odd transform
    assert resolve_gpu_decode(None, "cpu", plan, supported=yes) is False
    assert resolve_gpu_decode(None, "mps", plan, supported=yes) is False
    assert resolve_gpu_decode(False, "cuda", plan, supported=yes) is False
    assert resolve_gpu_decode(True, "cpu", plan, supported=yes) is True
    with pytest.raises(ValueError, match="torchvision cannot decode"):
        resolve_gpu_decode(True, "cuda", plan, supported=no)
    with pytest.raises(ValueError, match="no tensor"):
        resolve_gpu_decode(True, "cuda", None, supported=yes)
    assert torchvision_can_decode("cpu") is True
    assert torchvision_can_decode("cuda") is torch.cuda.is_available()
    assert torchvision_can_decode("mps") is False


def test_pipeline_and_embeddings_switch(lite0_encoder: Any) -> None:
    auto = ImagePipeline(lite0_encoder)
    assert auto.target_size  # loads the model: decisions are made
    assert auto.gpu_decode is False  # CPU model: auto is off
    assert auto.stats.gpu_decode is False
    forced = ImagePipeline(lite0_encoder, gpu_decode=True)
    assert forced.target_size
    assert forced.gpu_decode is True
    emb = ImageEmbeddings(lite0_encoder, device="cpu", gpu_decode=False)
    assert emb.pipeline()._gpu_option is False
    assert ImageEmbeddings(lite0_encoder, device="cpu").pipeline()._gpu_option is None


def test_plan_is_read_from_the_encoders_transform(
    lite0_encoder: Any, tiny_clip_encoder: Any
) -> None:
    from torchvision import transforms

    lite0 = TensorPreprocess.from_transform(lite0_encoder.transform)
    assert lite0 is not None and lite0.resize == 256 and lite0.crop == (224, 224)
    assert lite0.mean == pytest.approx((0.485, 0.456, 0.406))
    clip = TensorPreprocess.from_transform(tiny_clip_encoder.transform)
    size = tiny_clip_encoder.preprocess_config.input_size
    assert clip is not None and clip.crop == size and clip.resize == size[0]
    odd = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    assert TensorPreprocess.from_transform(odd) is None
    assert TensorPreprocess.from_transform(lambda image: image) is None


# -- equivalence ---------------------------------------------------------------------------------
def test_device_path_matches_the_pil_path_on_real_photos(
    lite0_encoder: Any, hd_jpegs: list[Path]
) -> None:
    paths = [str(p) for p in hd_jpegs]
    cpu = ImagePipeline(lite0_encoder, batch_size=4, num_workers=2)
    device = ImagePipeline(lite0_encoder, batch_size=4, num_workers=2, gpu_decode=True)
    expected, _, _ = _run(cpu, paths)
    got, indices, errors = _run(device, paths)
    assert indices == list(range(len(paths))) and not errors
    assert device.stats.device_decoded == len(paths) and device.stats.cpu_fallbacks == 0
    cosines = _cosines(got, expected)
    assert cosines.min() >= 0.998, cosines
    # Not the same computation: the device path decodes in full and resizes with torch.
    assert not np.allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pil(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image.getexif()[0x0112] = orientation
    image.info["exif"] = image.getexif().tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    tensor = torch.from_numpy(pixels).permute(2, 0, 1)
    got = apply_orientation(tensor, orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, expected)


def test_exif_rotated_jpeg_is_rotated_on_the_device(
    lite0_encoder: Any, photos: dict[str, Image.Image]
) -> None:
    stored = photos["rocket"].convert("RGB").resize((1600, 900), Image.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _jpeg(stored, quality=92, exif=exif)
    item = inspect_jpeg(data, "rotated.jpg", ImageLoadOptions())
    assert item is not None and item.orientation == 6
    no_exif = inspect_jpeg(data, "x", ImageLoadOptions(apply_exif_orientation=False))
    assert no_exif is not None and no_exif.orientation == 1
    device = ImagePipeline(lite0_encoder, gpu_decode=True)
    got, _, _ = _run(device, [data])
    assert device.stats.device_decoded == 1
    expected, _, _ = _run(ImagePipeline(lite0_encoder), [data])
    unrotated, _, _ = _run(ImagePipeline(lite0_encoder), [_jpeg(stored, quality=92)])
    assert _cosines(got, expected).min() >= 0.998
    assert _cosines(got, unrotated).min() < _cosines(got, expected).min()


def test_chunking_does_not_change_results(
    lite0_encoder: Any, photos: dict[str, Image.Image]
) -> None:
    plan = TensorPreprocess.from_transform(lite0_encoder.transform)
    assert plan is not None
    datas = [_jpeg(image.convert("RGB")) for image in list(photos.values())[:4]]
    items = [inspect_jpeg(d, i, ImageLoadOptions()) for i, d in enumerate(datas)]
    assert all(item is not None for item in items)
    whole = DeviceJpegDecoder(plan, "cpu").decode(items)  # type: ignore[arg-type]
    one_by_one = DeviceJpegDecoder(plan, "cpu", chunk_bytes=1).decode(items)  # type: ignore[arg-type]
    for a, b in zip(whole, one_by_one, strict=True):
        assert a is not None and b is not None and a.shape == (3, 224, 224)
        torch.testing.assert_close(a, b)


# -- fallbacks -----------------------------------------------------------------------------------
def test_other_formats_and_cmyk_take_the_cpu_path(
    lite0_encoder: Any, photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    coffee = photos["coffee"].convert("RGB")
    png = tmp_path / "coffee.png"
    coffee.save(png)
    cmyk = _jpeg(coffee.convert("CMYK"))
    assert inspect_jpeg(cmyk, "cmyk.jpg", ImageLoadOptions()) is None
    inputs: list[Any] = [str(png), cmyk, coffee, np.asarray(coffee), _jpeg(coffee)]
    device = ImagePipeline(lite0_encoder, batch_size=8, gpu_decode=True)
    got, indices, _ = _run(device, inputs)
    expected, _, _ = _run(ImagePipeline(lite0_encoder, batch_size=8), inputs)
    assert indices == [0, 1, 2, 3, 4]
    assert device.stats.device_decoded == 1  # only the RGB JPEG
    np.testing.assert_allclose(got[:4], expected[:4], atol=1e-5)  # the CPU path, unchanged
    assert _cosines(got[4:], expected[4:]).min() >= 0.998


def test_files_the_decoder_rejects_fall_back_to_the_cpu(
    lite0_encoder: Any, photos: dict[str, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    """nvJPEG refuses some JPEGs (e.g. progressive ones on some backends): the batched call
    fails, the bad file is found by decoding one at a time, and it takes the CPU path."""
    images = [image.convert("RGB") for image in list(photos.values())[:4]]
    inputs = [
        _jpeg(images[0]),
        _jpeg(images[1], progressive=True),
        _jpeg(images[2]),
        _jpeg(images[3]),
    ]
    real = gpu_module._decode_jpeg
    calls: list[int] = []

    def picky(data: list[torch.Tensor], device: Any) -> list[torch.Tensor]:
        calls.append(len(data))
        if any(bytes(t[:4096].numpy()).find(b"\xff\xc2") >= 0 for t in data):  # SOF2
            raise RuntimeError("nvjpeg: unsupported JPEG stream")
        return real(data, device)

    monkeypatch.setattr(gpu_module, "_decode_jpeg", picky)
    device = ImagePipeline(lite0_encoder, batch_size=4, gpu_decode=True)
    got, indices, errors = _run(device, inputs)
    assert indices == [0, 1, 2, 3] and not errors
    assert calls == [4, 1, 1, 1, 1]
    assert device.stats.device_decoded == 3 and device.stats.cpu_fallbacks == 1
    expected, _, _ = _run(ImagePipeline(lite0_encoder, batch_size=4), inputs)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-5)  # the CPU path's result
    assert _cosines(got, expected).min() >= 0.998


def test_corrupt_and_truncated_jpegs_fail_with_the_cpu_paths_error(
    lite0_encoder: Any, photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    good = _jpeg(photos["coffee"].convert("RGB"))
    corrupt = tmp_path / "corrupt.jpg"  # the header passes, the Huffman table is garbage
    damaged = bytearray(good)
    dht = good.find(b"\xff\xc4")
    damaged[dht + 5 : dht + 25] = b"\xff" * 20
    corrupt.write_bytes(bytes(damaged))
    assert inspect_jpeg(bytes(damaged), "corrupt", ImageLoadOptions()) is not None
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[: len(good) // 2])
    big = tmp_path / "big.jpg"
    big.write_bytes(_jpeg(Image.new("RGB", (1000, 1000))))
    inputs: list[Any] = [
        good,
        str(corrupt),
        str(truncated),
        str(tmp_path / "missing.jpg"),
        str(big),
    ]
    options = ImageLoadOptions(max_pixels=500_000)
    cpu = ImagePipeline(lite0_encoder, on_error="skip", load_options=options)
    device = ImagePipeline(lite0_encoder, on_error="skip", load_options=options, gpu_decode=True)
    _, cpu_indices, cpu_errors = _run(cpu, inputs)
    _, indices, errors = _run(device, inputs)
    assert indices == cpu_indices == [0]
    codes = {err.index: err.code for err in errors}
    assert codes == {err.index: err.code for err in cpu_errors}
    assert codes == {1: "corrupt", 2: "truncated", 3: "not_found", 4: "decompression_bomb"}
    assert device.stats.cpu_fallbacks == 1  # the corrupt file: rejected, then refused on CPU
    assert {err.index: err.source for err in errors} == {
        err.index: err.source for err in cpu_errors
    }
    # raise mode: the first failure, with its index, as on the CPU
    with pytest.raises(ImageLoadError) as info:
        _run(ImagePipeline(lite0_encoder, gpu_decode=True), [good, str(corrupt)])
    assert info.value.index == 1 and info.value.code == codes[1]
    assert str(corrupt) in str(info.value)


@pytest.mark.parametrize(
    ("size", "keep"),
    [((4000, 3000), (512, 512)), ((1920, 1080), (512, 512)), ((2000, 1500), (448, 448)),
     ((1024, 1024), (512, 512)), ((3000, 700), (256, 256)), ((600, 400), (512, 512))],
)  # fmt: skip
def test_device_reduction_mirrors_the_cpu_fast_decode(
    size: tuple[int, int], keep: tuple[int, int]
) -> None:
    from langchain_image_embeddings.images import load_image
    from langchain_image_embeddings.pipeline._gpu_decode import fast_decode_factors
    from langchain_image_embeddings.pipeline._steps import shrink

    decoded = shrink(
        load_image(_jpeg(Image.new("RGB", size)), draft_size=keep), (keep[0] // 2, keep[1] // 2)
    )
    width, height = size
    for factor in fast_decode_factors(size, keep):
        width, height = -(-width // factor), -(-height // factor)
    assert (width, height) == decoded.size


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for op, pos, value in edits:
        pos %= max(1, len(out))
        if op == 0 and out:
            out[pos] = value
        elif op == 1:
            del out[pos:]
        else:
            out[pos:pos] = bytes([value]) * 4
    return bytes(out)


_SEED_JPEG = _jpeg(
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8))
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_jpegs_give_a_vector_or_our_error_on_the_device_path(
    tiny_clip_encoder: Any, edits: list[tuple[int, int, int]]
) -> None:
    data = _mutate(_SEED_JPEG, edits)
    pipeline = ImagePipeline(
        tiny_clip_encoder, num_workers=0, on_error="skip", gpu_decode=True,
        load_options=ImageLoadOptions(max_pixels=4_000_000),
    )  # fmt: skip
    batches = list(pipeline.run([data]))
    vectors = np.concatenate([b.vectors for b in batches])
    errors = [err for b in batches for err in b.errors]
    assert len(vectors) + len(errors) == 1
    assert all(isinstance(err, ImageLoadError) and err.index == 0 for err in errors)
    assert np.isfinite(vectors).all()
    try:
        eligible = inspect_jpeg(data, "x", ImageLoadOptions(max_pixels=4_000_000)) is not None
    except ImageLoadError:
        eligible = False
    stats = pipeline.stats
    assert stats.device_decoded + stats.cpu_fallbacks == (1 if eligible else 0)


def test_read_image_bytes_applies_load_images_checks(tmp_path: Path) -> None:
    import base64

    from langchain_image_embeddings.images import load_image, read_image_bytes

    data = _jpeg(Image.new("RGB", (16, 12), (10, 200, 30)))
    path = tmp_path / "inside" / "a.jpg"
    path.parent.mkdir()
    path.write_bytes(data)
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    for source in (str(path), path, path.as_uri(), uri, data, bytearray(data), io.BytesIO(data)):
        assert read_image_bytes(source) == data, source
    image = Image.new("RGB", (4, 4))
    for decoded in (image, np.zeros((4, 4, 3), np.uint8), "https://example.com/a.jpg"):
        assert read_image_bytes(decoded) is None  # the CPU path (and its errors) take these
    (tmp_path / "outside.jpg").write_bytes(data)
    confined = ImageLoadOptions(root=str(tmp_path / "inside"))
    small = ImageLoadOptions(max_bytes=100)
    for source, options in (
        ("../outside.jpg", confined),
        (str(tmp_path / "missing.jpg"), ImageLoadOptions()),
        (str(tmp_path), ImageLoadOptions()),
        (str(path), small),
        (data, small),
        (b"", ImageLoadOptions()),
        ("data:text/plain;base64,AAAA", ImageLoadOptions()),
    ):
        with pytest.raises(ImageLoadError) as expected:
            load_image(source, options)
        with pytest.raises(ImageLoadError) as got:
            read_image_bytes(source, options, index=3)
        assert (got.value.code, got.value.index) == (expected.value.code, 3), source


def test_jpegs_the_resize_would_enlarge_take_the_cpu_path(
    lite0_encoder: Any, photos: dict[str, Image.Image]
) -> None:
    # Enlarging, torch's bicubic differs from Pillow's: a 3x3 and a 1000x11 JPEG gave
    # cosine 0.987 against the CPU path on the device path.
    coffee = photos["coffee"].convert("RGB")
    small = [_jpeg(coffee.resize((3, 3))), _jpeg(coffee.resize((1000, 11))), _jpeg(coffee)]
    device = ImagePipeline(lite0_encoder, batch_size=8, gpu_decode=True)
    got, indices, _ = _run(device, small)
    expected, _, _ = _run(ImagePipeline(lite0_encoder, batch_size=8), small)
    assert indices == [0, 1, 2]
    assert device.stats.device_decoded == 1 and device.stats.cpu_fallbacks == 2
    assert _cosines(got, expected).min() >= 0.998
