"""Image documents: folder walking, metadata, error reporting, URI lists."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from PIL import Image

from langchain_image_embeddings.document_loaders import ImageDirectoryLoader, ImageURILoader
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import ImageLoadOptions, describe_image_file
from tests.unit_tests.store_helpers import write_image


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    write_image(root / "a.png", 1)
    write_image(root / "b.jpg", 2, fmt="JPEG")
    write_image(root / "sub" / "c.png", 3)
    write_image(root / "sub" / "deeper" / "d.png", 4)
    write_image(root / ".hidden.png", 5)
    write_image(root / ".cache" / "e.png", 6)
    (root / "notes.txt").write_text("not an image")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "empty.png").write_bytes(b"")
    (root / "eps.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    outside = write_image(tmp_path / "outside.png", 7)
    os.symlink(outside, root / "link-out.png")
    os.symlink(root / "a.png", root / "link-in.png")
    return root


def _names(docs: list, root: Path) -> list[str]:
    return [Path(d.page_content).relative_to(root.resolve()).as_posix() for d in docs]


def test_walks_recursively_skipping_hidden_and_reporting_failures(tree: Path) -> None:
    loader = ImageDirectoryLoader(tree)
    docs = loader.load()
    assert _names(docs, tree) == ["a.png", "b.jpg", "link-in.png", "sub/c.png", "sub/deeper/d.png"]
    codes = {Path(e.source).name: e.code for e in loader.failures}
    assert codes == {
        "broken.jpg": "corrupt",  # a JPEG signature with garbage after it
        "empty.png": "empty",
        "eps.jpg": "unsupported_format",  # EPS never reaches Ghostscript
        "link-out.png": "outside_root",  # symlink out of the root is not followed
    }


def test_metadata_describes_the_file(tree: Path) -> None:
    doc = next(
        d for d in ImageDirectoryLoader(tree).lazy_load() if d.page_content.endswith("b.jpg")
    )
    path = Path(doc.page_content)
    meta = doc.metadata
    assert meta["source"] == doc.page_content == str(path) and path.is_absolute()
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (meta["width"], meta["height"], meta["format"]) == (40, 40, "JPEG")
    assert meta["bytes"] == path.stat().st_size
    assert "mtime" not in meta  # content-keyed: a touch changes nothing
    timed = ImageDirectoryLoader(tree, include_mtime=True).load()
    assert next(d for d in timed if d.page_content.endswith("b.jpg")).metadata[
        "mtime"
    ] == pytest.approx(path.stat().st_mtime)
    assert not doc.page_content.startswith("data:")  # stored by reference, never base64


def test_glob_exclude_and_non_recursive(tree: Path) -> None:
    only_png = ImageDirectoryLoader(tree, glob="*.png", exclude=["sub/deeper/*", "link-*"]).load()
    assert _names(only_png, tree) == ["a.png", "sub/c.png"]
    flat = ImageDirectoryLoader(tree, recursive=False, exclude=["link-*"]).load()
    assert _names(flat, tree) == ["a.png", "b.jpg"]


def test_on_error_raise(tree: Path) -> None:
    with pytest.raises(ImageLoadError) as info:
        ImageDirectoryLoader(tree, exclude=["link-*"], on_error="raise").load()
    assert Path(info.value.source).name == "broken.jpg"  # the first bad file, in sorted order
    assert info.value.code == "corrupt"
    with pytest.raises(ValueError):
        ImageDirectoryLoader(tree, on_error="ignore")  # type: ignore[arg-type]


def test_header_only_limits(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (600, 500)).save(big)
    with pytest.raises(ImageLoadError) as info:
        describe_image_file(big, ImageLoadOptions(max_pixels=100_000))
    assert info.value.code == "decompression_bomb"
    with pytest.raises(ImageLoadError) as info:
        describe_image_file(big, ImageLoadOptions(max_bytes=10))
    assert info.value.code == "too_large"
    with pytest.raises(ImageLoadError) as info:
        describe_image_file(tmp_path)
    assert info.value.code == "not_a_file"


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError):
        ImageDirectoryLoader(tmp_path / "missing").load()


def test_uri_loader(tree: Path) -> None:
    png = tree / "a.png"
    data_uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    uris = [
        str(png),
        png.as_uri(),
        data_uri,
        "https://example.com/x.png",
        "ftp://host/x.png",
        "nope.png",
    ]
    loader = ImageURILoader(uris)
    docs = loader.load()
    assert [d.page_content for d in docs] == [str(png.resolve()), png.as_uri(), data_uri]
    assert len({d.metadata["sha256"] for d in docs}) == 1  # same bytes three ways
    assert "mtime" not in docs[2].metadata
    assert [(e.index, e.code) for e in loader.failures] == [
        (3, "remote_disabled"),
        (4, "unsupported_scheme"),
        (5, "not_found"),
    ]
    # read(): the same reading, with the bytes kept for embedding without a second read
    read = loader.read(png.as_uri())
    assert read.metadata == docs[1].metadata and read.data == png.read_bytes()


def test_missing_directory_is_not_found(tmp_path: Path) -> None:
    # A missing folder was reported as "not a directory" [not_a_file].
    with pytest.raises(ImageLoadError) as info:
        ImageDirectoryLoader(tmp_path / "missing").load()
    assert info.value.code == "not_found" and "no such directory" in info.value.reason
    file = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(file)
    with pytest.raises(ImageLoadError) as info:
        ImageDirectoryLoader(file).load()
    assert info.value.code == "not_a_file"


def test_uri_loader_reads_strings_as_load_image_does(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loader had its own scheme dispatch: a relative "img:1.png" (a path for
    # load_image) was an "unsupported URI scheme 'img'", "file://host/..." was read as a
    # local path, and "DATA:" was no data URI.
    from langchain_image_embeddings import load_image

    monkeypatch.chdir(tree)
    (tree / "img:1.png").write_bytes((tree / "a.png").read_bytes())
    payload = base64.b64encode((tree / "a.png").read_bytes()).decode()
    uris = [
        "img:1.png",
        "DATA:image/png;base64," + payload,
        "file://elsewhere" + str(tree / "a.png"),
    ]
    loader = ImageURILoader(uris)
    docs = loader.load()
    assert [d.page_content for d in docs] == [str(tree / "img:1.png"), uris[1]]
    assert [(e.index, e.code) for e in loader.failures] == [(2, "unsupported_scheme")]
    for uri in uris[:2]:
        load_image(uri)  # the embeddings read what the loader accepted
    with pytest.raises(ImageLoadError) as info:
        load_image(uris[2])
    assert info.value.code == "unsupported_scheme"


def test_a_single_exclude_or_suffix_string_is_one_pattern(tree: Path) -> None:
    # exclude="sub/*" was split into characters (one of them "*"): every file was left out,
    # silently; suffixes=".png" (or "png") kept no file at all.
    def names(**kwargs: object) -> list[str]:
        docs = ImageDirectoryLoader(tree, **kwargs).load()  # type: ignore[arg-type]
        return sorted(Path(d.page_content).relative_to(tree).as_posix() for d in docs)

    assert names(exclude="sub/*") == names(exclude=["sub/*"]) == ["a.png", "b.jpg", "link-in.png"]
    assert names(suffixes=".png") == names(suffixes=["png"]) == names(suffixes=[".PNG"])
    assert "sub/c.png" in names(suffixes="png") and "b.jpg" not in names(suffixes="png")


def test_double_star_glob_includes_top_level_files(tree: Path) -> None:
    # glob="**/*.png" (LangChain's DirectoryLoader idiom, pathlib semantics) skipped the
    # top-level files: fnmatch needs a "/" where "**/" may match no folder.
    docs = ImageDirectoryLoader(tree, glob="**/*.png").load()
    names = sorted(Path(d.page_content).relative_to(tree).as_posix() for d in docs)
    assert names == ["a.png", "link-in.png", "sub/c.png", "sub/deeper/d.png"]
    docs = ImageDirectoryLoader(tree, exclude=["**/*.png"]).load()
    assert [Path(d.page_content).name for d in docs] == ["b.jpg"]
