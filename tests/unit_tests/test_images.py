"""Every supported input kind, and each bad input with its exact error."""

from __future__ import annotations

import base64
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from langchain_image_embeddings import ImageLoadError, ImageLoadOptions, load_image
from langchain_image_embeddings.images._options import describe


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


@pytest.fixture
def red() -> Image.Image:
    return Image.new("RGB", (40, 30), (255, 0, 0))


def _assert_red(image: Image.Image) -> None:
    assert image.mode == "RGB"
    assert image.size == (40, 30)
    r, g, b = image.getpixel((20, 15))  # type: ignore[misc]
    assert r > 240 and g < 15 and b < 15


# -- every input kind -------------------------------------------------------------------------
def test_str_path(tmp_path: Path, red: Image.Image) -> None:
    path = tmp_path / "red.png"
    red.save(path)
    _assert_red(load_image(str(path)))


def test_pathlib_path(tmp_path: Path, red: Image.Image) -> None:
    path = tmp_path / "red.jpg"
    red.save(path, quality=95)
    _assert_red(load_image(path))


def test_file_uri(tmp_path: Path, red: Image.Image) -> None:
    path = tmp_path / "with space.png"
    red.save(path)
    _assert_red(load_image(path.as_uri()))


def test_data_uri(red: Image.Image) -> None:
    uri = "data:image/png;base64," + base64.b64encode(_png_bytes(red)).decode()
    _assert_red(load_image(uri))


def test_data_uri_wrapped_urlsafe_unpadded(red: Image.Image) -> None:
    payload = base64.urlsafe_b64encode(_png_bytes(red)).decode().rstrip("=")
    wrapped = "\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))
    _assert_red(load_image("data:image/png;base64," + wrapped))


def test_bytes_bytearray_memoryview(red: Image.Image) -> None:
    data = _png_bytes(red)
    for value in (data, bytearray(data), memoryview(data)):
        _assert_red(load_image(value))


def test_file_object(red: Image.Image) -> None:
    _assert_red(load_image(io.BytesIO(_png_bytes(red))))


def test_pil_image_is_not_mutated(red: Image.Image) -> None:
    rgba = red.convert("RGBA")
    out = load_image(rgba)
    assert out.mode == "RGB" and rgba.mode == "RGBA"


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((30, 40), 128, np.uint8), (128, 128, 128)),
        (np.full((30, 40, 1), 128, np.uint8), (128, 128, 128)),
        (np.tile(np.array([255, 0, 0], np.uint8), (30, 40, 1)), (255, 0, 0)),
        (np.tile(np.array([1.0, 0.0, 0.0], np.float32), (30, 40, 1)), (255, 0, 0)),
        (np.tile(np.array([0.0, 0.0, 1.0], np.float64), (30, 40, 1)), (0, 0, 255)),
        (np.tile(np.array([65535, 0, 0], np.uint16), (30, 40, 1)), (255, 0, 0)),
        (np.ones((30, 40), bool), (255, 255, 255)),
        # HxWx4: fully transparent pixels are composited on the white background.
        (np.zeros((30, 40, 4), np.uint8), (255, 255, 255)),
        (np.tile(np.array([0, 0, 255, 255], np.uint8), (30, 40, 1)), (0, 0, 255)),
    ],
)
def test_numpy_arrays(array: np.ndarray, expected: tuple[int, int, int]) -> None:
    image = load_image(array)
    assert image.mode == "RGB" and image.size == (40, 30)
    assert image.getpixel((5, 5)) == expected


# -- modes, EXIF, frames -------------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # A 40x20 image whose left half is red, stored with orientation 6 (rotate 90° CW to view).
    raw = Image.new("RGB", (40, 20), (0, 0, 255))
    raw.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    raw.save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.size == (20, 40)
    top = image.getpixel((10, 5))
    assert top[0] > 200 and top[2] < 60  # type: ignore[index]


def test_palette_with_transparency_composites_on_background() -> None:
    palette = Image.new("P", (10, 10), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert load_image(_png_bytes(palette)).getpixel((3, 3)) == (255, 255, 255)
    grey = ImageLoadOptions(background=(128, 128, 128))
    assert load_image(_png_bytes(palette), grey).getpixel((3, 3)) == (128, 128, 128)


@pytest.mark.parametrize("mode", ["LA", "RGBA", "PA"])
def test_alpha_modes_composite_on_white(mode: str) -> None:
    base = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image = base.convert(mode) if mode != "PA" else base.convert("RGBA").convert("PA")
    out = load_image(_png_bytes(image) if mode != "PA" else image)
    assert out.getpixel((2, 2)) == (255, 255, 255)


def test_cmyk_jpeg() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red in CMYK
    out = load_image(_jpeg_bytes(cmyk, quality=95))
    r, g, b = out.getpixel((8, 8))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60


def test_16bit_png_is_scaled_not_clipped() -> None:
    arr = np.full((8, 8), 32768, np.uint16)  # mid grey in 16 bits
    image = Image.fromarray(arr)
    assert image.mode.startswith("I;16")
    value = load_image(_png_bytes(image)).getpixel((1, 1))
    assert value == (128, 128, 128)


def test_float_mode_image() -> None:
    image = Image.fromarray(np.full((8, 8), 0.5, np.float32))
    assert image.mode == "F"
    assert load_image(image).getpixel((1, 1)) == (128, 128, 128)


def test_first_frame_of_animated_gif() -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    r, g, b = load_image(buffer.getvalue()).getpixel((5, 5))  # type: ignore[misc]
    assert r > 200 and g < 50 and b < 50


# -- bad inputs: exact exception, code and message --------------------------------------------
def _error(source: object, options: ImageLoadOptions | None = None) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(source, options)  # type: ignore[arg-type]
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    err = _error(str(path))
    assert err.code == "not_found"
    assert str(err) == f"{path}: no such file [not_found]"
    assert isinstance(err, ValueError)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    assert str(_error(path)) == f"{path}: the file is empty (0 bytes) [empty]"


def test_non_image_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("hello, I am not a picture")
    err = _error(path)
    assert err.code == "unsupported_format"
    assert err.reason.startswith("not an image, or not one of the allowed formats (JPEG, PNG")


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = _jpeg_bytes(Image.fromarray(rng.integers(0, 255, (200, 200, 3), np.uint8)), quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    err = _error(path)
    assert err.code == "truncated"
    assert str(err) == f"{path}: the image data is truncated [truncated]"


def test_decompression_bomb_refused_from_header() -> None:
    # 3000x3000 = 9 M pixels against a 1 M pixel limit; refused before decoding.
    data = _png_bytes(Image.new("L", (3000, 3000)))
    err = _error(data, ImageLoadOptions(max_pixels=1_000_000))
    assert err.code == "decompression_bomb"
    assert "3000x3000 = 9000000 pixels exceeds the limit of 1000000" in err.reason


def test_pillow_warning_band_is_refused_by_default() -> None:
    # Pillow only warns between 89 M and 179 M pixels; we refuse. A 1-bit PNG keeps it small.
    data = _png_bytes(Image.new("1", (10000, 9000)))
    assert len(data) < 200_000
    err = _error(data)
    assert err.code == "decompression_bomb"


@pytest.mark.parametrize("uri", ["ftp://example.org/a.jpg", "s3://bucket/key.png", "gopher://x/y"])
def test_unsupported_scheme(uri: str) -> None:
    err = _error(uri)
    assert err.code == "unsupported_scheme"
    scheme = uri.split(":")[0]
    assert str(err) == (
        f"{uri}: unsupported URI scheme {scheme!r}; use a local path, file://, http(s):// or data: "
        "[unsupported_scheme]"
    )


def test_remote_disabled_by_default() -> None:
    err = _error("https://example.org/cat.jpg")
    assert err.code == "remote_disabled"
    assert "ImageLoadOptions(allow_remote=True)" in err.reason


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    err = _error(tmp_path)
    assert err.code == "not_a_file"
    assert "a directory" in err.reason


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert _error(fifo).code == "not_a_file"


def test_nul_byte_in_path() -> None:
    assert _error("bad\x00name.jpg").code == "invalid_input"


def test_file_over_byte_cap(tmp_path: Path, red: Image.Image) -> None:
    path = tmp_path / "red.png"
    red.save(path)
    err = _error(path, ImageLoadOptions(max_bytes=10))
    assert err.code == "too_large"


def test_eps_never_reaches_ghostscript() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert _error(eps).code == "unsupported_format"


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("data:image/png;base64,!!!notbase64!!!", "invalid_base64"),
        ("data:image/png,rawbytes", "invalid_base64"),
        ("data:text/plain;base64,aGVsbG8=", "unsupported_format"),
        ("data:image/png;base64", "invalid_base64"),
        ("data:image/png;base64,", "empty"),
    ],
)
def test_bad_data_uris(uri: str, code: str) -> None:
    assert _error(uri).code == code


def test_plain_base64_string_is_not_guessed(red: Image.Image) -> None:
    text = base64.b64encode(_png_bytes(red)).decode()
    assert _error(text).code == "not_found"  # treated as a (missing) path, never decoded


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((2, 3, 4, 5), np.uint8), "expected shape HxW, HxWx1, HxWx3 or HxWx4"),
        (np.zeros((0, 5, 3), np.uint8), "the array is empty"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN or infinite"),
        (np.full((4, 4, 3), 2.0, np.float32), "values in [0, 1]; found [2, 2]"),
        (np.full((4, 4), -3, np.int32), "values in [0, 255]"),
        (np.zeros((4, 4, 2), np.uint8), "expected shape"),
    ],
)
def test_bad_arrays(array: np.ndarray, fragment: str) -> None:
    err = _error(array)
    assert err.code == "invalid_array"
    assert fragment in err.reason
    assert f"shape={array.shape}" in err.source and str(array.dtype) in err.source


def test_closed_pil_image() -> None:
    image = Image.open(io.BytesIO(_png_bytes(Image.new("RGB", (4, 4)))))
    image.close()
    err = _error(image)
    assert err.code in ("invalid_input", "corrupt")
    assert err.source.startswith("<PIL.Image")


def test_unsupported_type() -> None:
    err = _error(12345)
    assert err.code == "invalid_input"
    assert "unsupported input type int" in err.reason


def test_extreme_aspect_ratio_refused() -> None:
    err = _error(_png_bytes(Image.new("L", (10000, 1))))
    assert err.code == "bad_geometry"


def test_index_is_recorded_and_error_pickles(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "x.png", index=7)
    err = info.value
    assert err.index == 7 and str(err).startswith("input #7 ")
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.source, clone.code, clone.index) == (err.source, err.code, 7)


def test_describe_truncates_data_uris() -> None:
    text = describe("data:image/png;base64," + "A" * 10_000)
    assert len(text) < 80 and "10022 chars" in text


def test_root_confinement(tmp_path: Path, red: Image.Image) -> None:
    root = tmp_path / "root"
    root.mkdir()
    inside = root / "ok.png"
    red.save(inside)
    outside = tmp_path / "secret.png"
    red.save(outside)
    (root / "link.png").symlink_to(outside)
    options = ImageLoadOptions(root=str(root))
    _assert_red(load_image(inside, options))
    _assert_red(load_image("ok.png", options))  # relative paths are taken under the root
    for escape in (str(outside), str(root / ".." / "secret.png"), str(root / "link.png")):
        err = _error(escape, options)
        assert err.code == "outside_root" and f"outside the allowed root {root}" in err.reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_can_be_accepted_for_one_load(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), np.uint8)).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    image = load_image(path, ImageLoadOptions(allow_truncated=True))
    assert image.size == (160, 120) and image.mode == "RGB"
    # Scoped: the next default load still refuses the same file, and Pillow's global is untouched.
    from PIL import ImageFile

    assert _error(path).code == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# -- regressions found by probing (round 4) -----------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "kwargs"), [("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}), ("GIF", {})]
)
@pytest.mark.parametrize("draft", [None, (64, 64)])
def test_truncated_files_give_readable_pixels(
    photos: dict[str, Image.Image],
    fmt: str,
    kwargs: dict[str, object],
    draft: tuple[int, int] | None,
) -> None:
    # allow_truncated used to return a lazily opened image over a closed buffer: its size
    # was right but reading a pixel raised "I/O operation on closed file" (and with a
    # draft size, as the pipeline's fast decode passes, load_image itself raised it).
    buffer = io.BytesIO()
    photos["astronaut"].save(buffer, format=fmt, **kwargs)
    full = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"), dtype=np.int16)
    cut = buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3]
    image = load_image(cut, ImageLoadOptions(allow_truncated=True), draft_size=draft)
    pixels = np.asarray(image, dtype=np.int16)  # raised before the fix
    assert image.mode == "RGB"
    if draft is None:  # the rows the data holds are decoded as in the whole file
        assert pixels.shape == full.shape
        top = full.shape[0] // 4
        assert np.abs(pixels[:top] - full[:top]).mean() < 3.0
    else:  # reduced (DCT scale or box) but still covering the size asked for
        assert pixels.shape[0] >= draft[1] and pixels.shape[1] >= draft[0]
        assert pixels[: pixels.shape[0] // 4].std() > 10  # real picture rows, not a blank
    assert _error(cut).code == "truncated"  # still refused by default


def test_load_options_are_checked_when_made() -> None:
    # A bad option used to surface as a misleading error on every image: formats="JPEG"
    # made each file "corrupt: cannot parse the image header: 'J'".
    opts = ImageLoadOptions(formats="jpeg", background="black", allowed_hosts="cdn.local")
    assert opts.formats == ("JPEG",)
    assert opts.background == (0, 0, 0)
    assert opts.allowed_hosts == ("cdn.local",)
    assert ImageLoadOptions(background=[1, 2, 3]).background == (1, 2, 3)
    assert ImageLoadOptions(max_pixels=1e8).max_pixels == 100_000_000
    for bad, match in [
        ({"formats": "JPG"}, "unknown image format"),
        ({"formats": ()}, "formats must be a non-empty"),
        ({"background": "not-a-colour"}, "background must be"),
        ({"background": (1, 2)}, "background must be"),
        ({"max_bytes": -1}, "max_bytes must be a positive"),
        ({"max_pixels": 0}, "max_pixels must be a positive"),
        ({"timeout": 0}, "timeout"),
        ({"max_aspect_ratio": 0.5}, "max_aspect_ratio"),
        ({"max_aspect_ratio": "wide"}, "max_aspect_ratio"),
        ({"max_bytes": 1500.5}, "max_bytes must be a positive int"),
    ]:
        with pytest.raises(ValueError, match=match):
            ImageLoadOptions(**bad)  # type: ignore[arg-type]


def test_big_endian_uint16_arrays_are_16_bit() -> None:
    # ">u2" compared unequal to np.uint16 and was refused as "values in [0, 255]".
    image = load_image(np.full((4, 5), 65535, dtype=">u2"))
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.full((4, 5), 257 * 100, dtype=">u2")).getpixel((0, 0)) == (100,) * 3


def test_premultiplied_la_image_is_composited() -> None:
    # Mode "La" raised a raw ValueError ("conversion from La to RGBA not supported").
    la = Image.merge("La", (Image.new("L", (4, 4), 64), Image.new("L", (4, 4), 128)))
    r, g, b = load_image(la).getpixel((0, 0))  # type: ignore[misc]
    # 64 premultiplied by 128/255 is luma ~128 at half opacity over white: ~191.
    assert r == g == b and 185 <= r <= 197


def test_data_uri_scheme_is_case_insensitive(red: Image.Image) -> None:
    payload = base64.b64encode(_png_bytes(red)).decode()
    _assert_red(load_image("DATA:image/png;base64," + payload))
    assert describe("DATA:image/png;base64," + payload).startswith("DATA:image/png;base64,...")


def test_unreadable_file_objects_are_load_errors(red: Image.Image) -> None:
    # A closed file raised a raw ValueError, a failing read() a raw OSError (aborting a
    # whole try_embed_images batch).
    handle = io.BytesIO(_png_bytes(red))
    handle.close()
    assert _error(handle).code == "invalid_input"

    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    err = _error(Failing())
    assert err.code == "not_found" and "Input/output error" in err.reason


def test_empty_path_is_named_in_the_message() -> None:
    err = _error("")
    assert err.code == "not_found" and str(err).startswith("'': ")


# -- the one reader: read_image_source -------------------------------------------------------------
def test_read_image_source_reads_once_and_describes_those_bytes(
    tmp_path: Path, red: Image.Image
) -> None:
    import hashlib

    from langchain_image_embeddings.images import ImageSource, read_image_source

    data = _png_bytes(red)
    path = tmp_path / "red.png"
    path.write_bytes(data)
    expected = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": 40,
        "height": 30,
        "format": "PNG",
        "bytes": len(data),
    }
    for given, source in [
        (str(path), str(path)),
        (path, str(path)),  # an os.PathLike is a path
        (path.as_uri(), path.as_uri()),  # the record keeps the URI
        ("data:image/png;base64," + base64.b64encode(data).decode(), None),
    ]:
        image = read_image_source(given)
        assert isinstance(image, ImageSource) and image.data == data
        assert {k: image.metadata[k] for k in expected} == expected, given
        assert image.sha256 == expected["sha256"]
        if source is not None:
            assert image.source == source
            assert image.metadata["mtime"] == path.stat().st_mtime
        else:
            assert "mtime" not in image.metadata
    relative = os.path.relpath(path)
    assert read_image_source(relative).source == os.path.abspath(relative)
    assert repr(read_image_source(path)).startswith("ImageSource(metadata=")  # no bytes in logs


def test_read_image_source_refuses_what_load_image_refuses(tmp_path: Path) -> None:
    from langchain_image_embeddings.images import read_image_source

    (tmp_path / "eps.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    cases = {
        "https://example.org/cat.jpg": "remote_disabled",
        "ftp://example.org/a.jpg": "unsupported_scheme",
        str(tmp_path / "missing.png"): "not_found",
        str(tmp_path): "not_a_file",
        str(tmp_path / "eps.jpg"): "unsupported_format",
        "data:image/png;base64,@@@": "invalid_base64",
    }
    for uri, code in cases.items():
        with pytest.raises(ImageLoadError) as raised:
            read_image_source(uri)
        assert raised.value.code == code, uri
        with pytest.raises(ImageLoadError) as loaded:
            load_image(uri)
        assert loaded.value.code == code, uri


def test_read_image_source_reads_object_storage_through_pyarrow(
    tmp_path: Path, red: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``s3://`` and friends go through pyarrow's filesystems (here a local one stands in)."""
    import hashlib

    import pyarrow.fs as pafs

    from langchain_image_embeddings.images import PYARROW_SCHEMES, read_image_source

    data = _png_bytes(red)
    (tmp_path / "red.png").write_bytes(data)
    asked: list[str] = []

    class LocalStandIn:
        @staticmethod
        def from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
            asked.append(uri)
            return pafs.LocalFileSystem(), str(tmp_path / uri.rsplit("/", 1)[-1])

    monkeypatch.setattr(pafs, "FileSystem", LocalStandIn)
    assert {"s3", "gs"} <= PYARROW_SCHEMES
    opted_in = ImageLoadOptions(allow_object_storage=True)  # object storage is opt-in
    image = read_image_source("s3://bucket/red.png", opted_in)
    assert asked == ["s3://bucket/red.png"] and image.data == data
    assert image.source == "s3://bucket/red.png" and "mtime" not in image.metadata
    assert image.sha256 == hashlib.sha256(data).hexdigest() and image.metadata["width"] == 40
    for uri, options, code in [
        ("gs://bucket/missing.png", opted_in, "not_found"),
        (
            "gs://bucket/red.png",
            ImageLoadOptions(max_bytes=10, allow_object_storage=True),
            "too_large",
        ),
        ("gs://bucket/red.png", None, "remote_disabled"),
    ]:
        with pytest.raises(ImageLoadError) as raised:
            read_image_source(uri, options)
        assert (raised.value.code, raised.value.source) == (code, uri)
    # Options in the URI would let a list of inputs point object storage at any endpoint
    # (pyarrow honours them): refused before pyarrow sees the URI.
    asked.clear()
    for uri in [
        "s3://bucket/red.png?endpoint_override=127.0.0.1:9000&scheme=http",
        "gs://bucket/red.png?scheme=http",
        "s3://bucket/red.png#frag",
    ]:
        with pytest.raises(ImageLoadError) as raised:
            read_image_source(uri, opted_in)
        assert (raised.value.code, raised.value.source) == ("blocked_url", uri)
    assert asked == []


def test_an_image_source_is_decoded_from_its_bytes(tmp_path: Path, red: Image.Image) -> None:
    from langchain_image_embeddings.images import ImageSource, read_image_bytes, read_image_source

    path = tmp_path / "red.png"
    path.write_bytes(_png_bytes(red))
    source = read_image_source(path)
    path.unlink()  # nothing reads the file again
    _assert_red(load_image(source))
    assert read_image_bytes(source) == source.data
    bad = ImageSource(b"not an image", {"source": "s3://bucket/x.png", "sha256": "0"})
    with pytest.raises(ImageLoadError) as raised:
        load_image(bad, index=2)
    assert (raised.value.source, raised.value.code, raised.value.index) == (
        "s3://bucket/x.png",
        "unsupported_format",
        2,
    )
    assert describe(bad) == "s3://bucket/x.png"
    empty = ImageSource(b"", {"source": "cat.png", "sha256": "0"})
    with pytest.raises(ImageLoadError, match=r"cat\.png: no bytes"):
        load_image(empty)
