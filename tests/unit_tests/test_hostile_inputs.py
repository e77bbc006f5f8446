"""Hostile and mutated image bytes: only the package's own error, in bounded time."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from langchain_image_embeddings import ImageLoadError, ImageLoadOptions, load_image
from langchain_image_embeddings.errors import IMAGE_ERROR_CODES


def _encode(fmt: str, **kwargs: object) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (24, 32, 3), np.uint8))
    if fmt == "GIF":
        image = image.convert("P")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


SEEDS = {fmt: _encode(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_bytes_give_an_image_or_our_error(data: bytes) -> None:
    started = time.monotonic()
    try:
        image = load_image(data, ImageLoadOptions(max_pixels=4_000_000))
    except ImageLoadError as err:
        assert err.code in IMAGE_ERROR_CODES
    else:
        assert image.mode == "RGB" and image.width > 0 and image.height > 0
    assert time.monotonic() - started < 2.0


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes(data: bytes) -> None:
    with pytest.raises(ImageLoadError):
        load_image(data)
