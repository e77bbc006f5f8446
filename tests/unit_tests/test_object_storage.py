"""Object storage is an explicit opt-in, and its endpoint comes from configuration only.

An outside probe (issue 24, item 1) put ``s3://bucket/secret.png?endpoint_override=127.0.0.1:PORT&
scheme=http`` in an ``embed-dataset`` list and got it fetched from loopback and embedded, while
``http://127.0.0.1/...`` in the same file was refused. Here pyarrow's ``FileSystem.from_uri`` is
replaced by a local stand-in that records what it was asked for, so nothing is contacted: a
refused URI must never reach it, and an accepted one reaches it stripped to scheme, bucket and
path.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images import (
    PYARROW_SCHEMES,
    ImageLoadOptions,
    read_image_source,
    uri_scheme,
)

OPTED_IN = ImageLoadOptions(allow_object_storage=True)
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "CLOUD_STORAGE_EMULATOR_ENDPOINT")


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """A local folder standing in for every bucket (an object is the file of its last path
    component), and the list of URIs pyarrow was asked to open."""
    import pyarrow.fs as pafs

    folder = tmp_path / "bucket"
    folder.mkdir()
    (folder / "red.png").write_bytes(_png((255, 0, 0)))
    (folder / "blue.png").write_bytes(_png((0, 0, 255)))
    asked: list[str] = []
    real = pafs.FileSystem

    class LocalStandIn:
        @staticmethod
        def from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
            if uri_scheme(uri) not in PYARROW_SCHEMES:  # pyarrow's own local files (shards)
                return real.from_uri(uri)  # type: ignore[no-any-return]
            asked.append(uri)
            return pafs.LocalFileSystem(), str(folder / uri.rsplit("/", 1)[-1])

    monkeypatch.setattr(pafs, "FileSystem", LocalStandIn)
    for name in ENDPOINT_VARIABLES:  # the machine's own configuration must not leak in
        monkeypatch.delenv(name, raising=False)
    return folder, asked


def _code(uri: str, options: ImageLoadOptions | None = None) -> str:
    with pytest.raises(ImageLoadError) as raised:
        read_image_source(uri, options)
    assert raised.value.source == uri
    return raised.value.code


# -- the opt-in ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/red.png",
        "S3://bucket/red.png",
        "gs://bucket/red.png",
        "gcs://bucket/red.png",
        "hdfs://namenode:8020/red.png",
        "viewfs://cluster/red.png",
        "abfs://container@account.dfs.core.windows.net/red.png",
        "abfss://container@account.dfs.core.windows.net/red.png",
    ],
)
def test_object_storage_is_refused_without_the_opt_in(
    uri: str, bucket: tuple[Path, list[str]]
) -> None:
    with pytest.raises(ImageLoadError) as raised:
        read_image_source(uri)
    assert raised.value.code == "remote_disabled"
    assert "ImageLoadOptions(allow_object_storage=True)" in raised.value.reason
    assert _code(uri, ImageLoadOptions(allow_remote=True)) == "remote_disabled"  # http's is not it
    assert bucket[1] == []  # pyarrow never saw it


def test_object_storage_is_read_with_the_opt_in(bucket: tuple[Path, list[str]]) -> None:
    folder, asked = bucket
    image = read_image_source("s3://bucket/red.png", OPTED_IN)
    assert image.data == (folder / "red.png").read_bytes() and image.source == "s3://bucket/red.png"
    image = read_image_source("abfs://container@account.dfs.core.windows.net/blue.png", OPTED_IN)
    assert image.metadata["width"] == 40
    assert asked == [
        "s3://bucket/red.png",
        "abfs://container@account.dfs.core.windows.net/blue.png",
    ]


def test_the_opt_in_is_a_bool() -> None:
    for value in ("false", 1, None):
        with pytest.raises(ValueError, match="allow_object_storage must be True or False"):
            ImageLoadOptions(allow_object_storage=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allow_remote must be True or False"):
        ImageLoadOptions(allow_remote="no")  # type: ignore[arg-type]


def test_the_uri_loader_reports_object_storage_without_the_opt_in(
    bucket: tuple[Path, list[str]],
) -> None:
    from langchain_image_embeddings.document_loaders import ImageURILoader

    loader = ImageURILoader(["s3://bucket/red.png"])
    assert loader.load() == []
    assert [e.code for e in loader.failures] == ["remote_disabled"]
    assert bucket[1] == []
    opted = ImageURILoader(["s3://bucket/red.png"], load_options=OPTED_IN)
    docs = opted.load()
    assert [d.page_content for d in docs] == ["s3://bucket/red.png"] and not opted.failures


def test_add_images_needs_the_opt_in(
    bucket: tuple[Path, list[str]], tiny_clip_encoder: Any, tmp_path: Path
) -> None:
    from langchain_image_embeddings import ImageEmbeddings
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    plain = FAISSImageStore(ImageEmbeddings(tiny_clip_encoder, device="cpu"), tmp_path / "a")
    result = plain.add_images(["s3://bucket/red.png"])
    assert not result.added and [e.code for e in result.failures] == ["remote_disabled"]
    assert bucket[1] == []
    opted = ImageEmbeddings(tiny_clip_encoder, device="cpu", load_options=OPTED_IN)
    store = FAISSImageStore(opted, tmp_path / "b")
    result = store.add_images(["s3://bucket/red.png"])
    assert len(result.added) == 1 and not result.failures
    assert store.get_by_ids(result.added)[0].metadata["source"] == "s3://bucket/red.png"


def test_the_ray_read_tasks_obey_the_options(bucket: tuple[Path, list[str]]) -> None:
    from langchain_image_embeddings.scale.ray import read_batch

    batch = {"shard": [0], "pos": [0], "uri": ["s3://bucket/red.png"]}
    assert list(read_batch(batch, None)["error_code"]) == ["remote_disabled"]
    assert list(read_batch(batch, OPTED_IN)["error_code"]) == [""]


# -- endpoints from configuration only ----------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/red.png?endpoint_override=127.0.0.1:9000&scheme=http",  # the probe's row
        "s3://key:secret@bucket/red.png",
        "s3://user@bucket/red.png",
        "s3://bucket:9000/red.png",
        "s3://127.0.0.1:9000/red.png",
        "gs://bucket/red.png?endpoint_override=localhost:4443",
        "gs://bucket:4443/red.png",
        "hdfs://127.0.0.1:8020/red.png",
        "hdfs://namenode/red.png",
        "viewfs://10.0.0.5/red.png",
        "abfs://container@127.0.0.1:10000/red.png",
        "abfs://container@localhost/red.png",
        "abfs://:secret@account.blob.core.windows.net/container/red.png",
    ],
)
def test_an_endpoint_in_the_uri_is_refused(uri: str, bucket: tuple[Path, list[str]]) -> None:
    assert _code(uri, OPTED_IN) == "blocked_url"
    assert bucket[1] == []


def test_an_endpoint_host_in_the_uri_is_read_when_the_caller_trusts_it(
    bucket: tuple[Path, list[str]],
) -> None:
    trusted = ImageLoadOptions(allow_object_storage=True, allowed_hosts=("namenode", "127.0.0.1"))
    assert read_image_source("hdfs://namenode:8020/red.png", trusted).metadata["width"] == 40
    assert read_image_source("abfs://c@127.0.0.1:10000/red.png", trusted).metadata["width"] == 40
    assert bucket[1] == ["hdfs://namenode:8020/red.png", "abfs://c@127.0.0.1:10000/red.png"]


def test_pyarrow_gets_the_uri_without_its_empty_query(bucket: tuple[Path, list[str]]) -> None:
    read_image_source("s3://bucket/red.png?", OPTED_IN)
    assert bucket[1] == ["s3://bucket/red.png"]


@pytest.mark.parametrize(
    ("variable", "endpoint", "host"),
    [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9", "127.0.0.1"),
        ("AWS_ENDPOINT_URL_S3", "http://localhost:9000", "localhost"),
        ("AWS_ENDPOINT_URL", "10.1.2.3:9000", "10.1.2.3"),
        ("AWS_ENDPOINT_URL", "http://[::1]:9000", "::1"),
        ("AWS_ENDPOINT_URL", "http://169.254.169.254", "169.254.169.254"),
    ],
)
def test_a_configured_private_endpoint_is_refused_unless_allowed(
    variable: str,
    endpoint: str,
    host: str,
    bucket: tuple[Path, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, endpoint)
    with pytest.raises(ImageLoadError) as raised:
        read_image_source("s3://bucket/red.png", OPTED_IN)
    assert raised.value.code == "blocked_url"
    assert variable in raised.value.reason and "allowed_hosts" in raised.value.reason
    assert bucket[1] == []
    trusted = ImageLoadOptions(allow_object_storage=True, allowed_hosts=(host,))
    assert read_image_source("s3://bucket/red.png", trusted).metadata["width"] == 40
    assert bucket[1] == ["s3://bucket/red.png"]


def test_the_s3_specific_endpoint_is_the_one_checked(
    bucket: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AWS_ENDPOINT_URL_S3`` wins over ``AWS_ENDPOINT_URL``, as in the AWS SDK."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://8.8.8.8")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    assert _code("s3://bucket/red.png", OPTED_IN) == "blocked_url"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://8.8.4.4")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert read_image_source("s3://bucket/red.png", OPTED_IN).metadata["width"] == 40


def test_a_configured_gcs_emulator_on_loopback_is_refused_unless_allowed(
    bucket: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", "http://127.0.0.1:4443")
    assert _code("gs://bucket/red.png", OPTED_IN) == "blocked_url"
    assert read_image_source("s3://bucket/red.png", OPTED_IN).metadata["width"] == 40  # S3's own
    trusted = ImageLoadOptions(allow_object_storage=True, allowed_hosts=("127.0.0.1",))
    assert read_image_source("gs://bucket/red.png", trusted).metadata["width"] == 40


def test_a_public_configured_endpoint_is_read(
    bucket: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://8.8.8.8:443")
    assert read_image_source("s3://bucket/red.png", OPTED_IN).metadata["width"] == 40


def test_open_object_storage_refuses_other_schemes() -> None:
    from langchain_image_embeddings.images import open_object_storage

    for uri in ("photos/cat.png", "https://example.org/cat.png"):
        with pytest.raises(ImageLoadError) as raised:
            open_object_storage(uri, OPTED_IN)
        assert raised.value.code == "unsupported_scheme"


# -- the shard plan and the command line --------------------------------------------------


def _uri_table(path: Path, uris: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uri"])
        writer.writerows([u] for u in uris)
    return path


def test_a_table_in_object_storage_needs_the_opt_in(bucket: tuple[Path, list[str]]) -> None:
    from langchain_image_embeddings.scale.plan import plan_shards

    folder, asked = bucket
    _uri_table(folder / "list.csv", ["s3://bucket/red.png", "s3://bucket/blue.png"])
    with pytest.raises(ImageLoadError) as raised:
        plan_shards("s3://bucket/list.csv")
    assert raised.value.code == "remote_disabled" and asked == []
    with pytest.raises(ImageLoadError) as raised:
        plan_shards("s3://bucket/list.csv?endpoint_override=127.0.0.1:9000", load_options=OPTED_IN)
    assert raised.value.code == "blocked_url" and asked == []
    plan = plan_shards("s3://bucket/list.csv", load_options=OPTED_IN)
    assert plan.shards[0].inputs == ("s3://bucket/red.png", "s3://bucket/blue.png")
    assert asked == ["s3://bucket/list.csv"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.scale_tests.corpus import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def test_embed_dataset_refuses_object_storage_rows_without_the_flag(
    bucket: tuple[Path, list[str]],
    tiny_model: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The probe's list: an ``s3://`` row next to a local file and an ``http://`` row."""
    folder, asked = bucket
    table = _uri_table(
        tmp_path / "list.csv",
        [
            str(folder / "blue.png"),
            "s3://bucket/red.png",
            "s3://bucket/red.png?endpoint_override=127.0.0.1:9&scheme=http",
            "http://127.0.0.1:9/red.png",
        ],
    )
    args = ["embed-dataset", str(table), "--model", tiny_model, "--device", "cpu", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "s3://bucket/red.png: object storage is disabled" in err
    assert err.count("[remote_disabled]") == 4 - 1 and asked == []  # http too; the file is read

    assert main([*args, "--out", str(tmp_path / "b"), "--allow-object-storage"]) == 1
    err = capsys.readouterr().err
    assert "s3://bucket/red.png:" not in err  # read now
    assert "endpoint_override" in err and "[blocked_url]" in err  # the probe's row, still refused
    assert "http://127.0.0.1:9/red.png" in err  # http(s) keeps its own opt-in
    assert asked == ["s3://bucket/red.png"]


def test_embed_dataset_reads_a_table_in_object_storage_with_the_flag(
    bucket: tuple[Path, list[str]],
    tiny_model: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    folder, asked = bucket
    _uri_table(folder / "list.csv", ["s3://bucket/red.png", "s3://bucket/blue.png"])
    args = ["embed-dataset", "s3://bucket/list.csv", "--model", tiny_model, "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a"), "--quiet"]) == 2
    assert "allow_object_storage" in capsys.readouterr().err and asked == []

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    flags = ["--allow-object-storage", "--quiet", "--json"]
    assert main([*args, "--out", str(tmp_path / "b"), *flags]) == 2
    assert "[blocked_url]" in capsys.readouterr().err and asked == []

    trusted = ["--trusted-endpoint", "127.0.0.1"]
    assert main([*args, "--out", str(tmp_path / "c"), *flags, *trusted]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["embedded"] == 2 and report["images"] == 2
    assert asked == ["s3://bucket/list.csv", "s3://bucket/red.png", "s3://bucket/blue.png"]
