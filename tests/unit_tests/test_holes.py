"""Issue 10: the holes an outside review found (each test failed before its fix)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from langchain_image_embeddings import cli
from langchain_image_embeddings.document_loaders import ImageDirectoryLoader
from langchain_image_embeddings.errors import (
    IMAGE_ERROR_CODES,
    EncoderError,
    ImageLoadError,
    StoreError,
    StoreLockedError,
)
from langchain_image_embeddings.images import ImageLoadOptions, describe_image_file, load_image

REPO = Path(__file__).parents[2]


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


# -- 1. root= confinement cannot be raced ------------------------------------------------------
def test_root_confinement_survives_a_directory_swapped_for_an_outside_symlink(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    inside = root / "sub"
    _png(inside / "img.png", (0, 255, 0))
    outside = tmp_path / "outside"
    _png(outside / "img.png", (255, 0, 0))
    parked = root / "parked"
    options = ImageLoadOptions(root=str(root))
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.rename(inside, parked)
            os.symlink(outside, inside)
            time.sleep(0)
            os.unlink(inside)
            os.rename(parked, inside)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    loads = outside_pixels = 0
    failures: list[BaseException] = []
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline:
            for path in ("sub/img.png", str(inside / "img.png")):
                try:
                    pixel = load_image(path, options).getpixel((0, 0))
                except Exception as exc:
                    failures.append(exc)
                    continue
                loads += 1
                outside_pixels += pixel == (255, 0, 0)
    finally:
        stop.set()
        swapper.join()
    assert outside_pixels == 0, f"{outside_pixels} of {loads} loads returned the outside file"
    stray = [f for f in failures if not isinstance(f, ImageLoadError)]
    assert not stray, f"{len(stray)} raw errors, e.g. {stray[0]!r}"
    assert loads > 0 and failures  # both outcomes happened: the race really ran


def test_root_confinement_still_allows_symlinks_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _png(root / "real" / "a.png", (0, 0, 255))
    (root / "alias").symlink_to(root / "real")
    (root / "link.png").symlink_to(root / "real" / "a.png")
    options = ImageLoadOptions(root=str(root))
    for path in ("alias/a.png", "link.png", str(root / "alias" / "a.png")):
        assert load_image(path, options).getpixel((0, 0)) == (0, 0, 255)


# -- 2. a symlink loop is a reported failure, not a crash --------------------------------------
@pytest.fixture
def loop_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    _png(folder / "ok.png", (10, 20, 30), (64, 64))
    os.symlink("loop.png", folder / "loop.png")
    return folder


def test_directory_loader_reports_a_symlink_loop(loop_folder: Path) -> None:
    loader = ImageDirectoryLoader(loop_folder)
    docs = loader.load()
    assert [Path(d.page_content).name for d in docs] == ["ok.png"]
    assert [Path(e.source).name for e in loader.failures] == ["loop.png"]
    assert loader.failures[0].code in IMAGE_ERROR_CODES
    with pytest.raises(ImageLoadError, match="loop"):
        ImageDirectoryLoader(loop_folder, on_error="raise").load()


def test_sync_directory_reports_a_symlink_loop(
    loop_folder: Path, tiny_clip_embeddings: Any
) -> None:
    from langchain_image_embeddings.sync import sync_directory
    from langchain_image_embeddings.vectorstores import FAISSImageStore

    store = FAISSImageStore(tiny_clip_embeddings, loop_folder.parent / "index")
    result = sync_directory(store, loop_folder)
    store.close()
    assert [Path(e.source).name for e in result.failed] == ["loop.png"]
    assert result.failed[0].code in IMAGE_ERROR_CODES
    assert len(store) == 1


def test_cli_index_reports_a_symlink_loop(
    loop_folder: Path, lite0_embeddings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"faiss:{loop_folder.parent / 'index'}"
    code = cli.main(["index", str(loop_folder), "--store", store, "--device", "cpu", "--quiet"])
    out = capsys.readouterr()
    assert code == cli.EXIT_INPUT_ERRORS
    assert "loop.png" in out.err + out.out
    assert "Traceback" not in out.err + out.out


# -- 3. one set of header checks ---------------------------------------------------------------
def test_loader_and_load_image_agree_on_geometry(tmp_path: Path) -> None:
    strip = _png(tmp_path / "strip.png", (1, 2, 3), (5000, 2))
    with pytest.raises(ImageLoadError) as loaded:
        load_image(strip)
    with pytest.raises(ImageLoadError) as described:
        describe_image_file(strip)
    assert loaded.value.code == described.value.code == "bad_geometry"


# -- 4. save_pretrained is crash-safe ----------------------------------------------------------
def _tiny_encoder(seed: int) -> Any:
    import torch

    from langchain_image_embeddings.encoders import create_encoder

    torch.manual_seed(seed)
    return create_encoder(
        "timm:test_resnet", pretrained=None, allow_random_weights=True, embedding_dim=8
    )


def _vector(directory: Path) -> Any:
    import torch

    from langchain_image_embeddings.encoders import create_encoder

    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 64, 64)
    encoder = create_encoder(f"local:{directory}")
    return encoder.encode_images(pixels).detach().numpy()


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_save_pretrained_killed_between_steps_leaves_a_loadable_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    from langchain_image_embeddings.encoders.local import save_pretrained

    out = tmp_path / "model"
    save_pretrained(_tiny_encoder(1), out)
    old = _vector(out)
    new_dir = save_pretrained(_tiny_encoder(2), tmp_path / "reference")
    new = _vector(new_dir)
    assert not np.allclose(old, new)

    real_replace = os.replace
    calls = {"n": 0}

    def dying_replace(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise OSError("simulated kill")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(OSError, match="simulated kill"):
        save_pretrained(_tiny_encoder(2), out)
    monkeypatch.setattr(os, "replace", real_replace)
    got = _vector(out)
    if fail_at <= 2:  # before config.json switched: the old model, whole
        assert np.allclose(got, old, atol=1e-6)
    else:  # after: the new one
        assert np.allclose(got, new, atol=1e-6)
    save_pretrained(_tiny_encoder(2), out)  # a later save completes and tidies up
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert np.allclose(_vector(out), new, atol=1e-6)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_image_embeddings import _atomic

    target = tmp_path / "a.json"
    _atomic.write_atomic(target, b"1")
    _atomic.write_atomic(target, b"2")
    assert target.read_bytes() == b"2"

    def killed(src: Any, dst: Any) -> None:
        raise OSError("simulated kill")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError, match="simulated kill"):
        _atomic.write_atomic(target, b"3")
    assert target.read_bytes() == b"2" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


# -- 5. head weights must fit ------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["timm:test_resnet", "torchvision:resnet18"])
def test_wrong_head_weights_are_refused_naming_the_keys(spec: str, tmp_path: Path) -> None:
    import torch

    from langchain_image_embeddings.encoders import create_encoder

    def make(**kwargs: Any) -> Any:
        return create_encoder(
            spec, pretrained=None, allow_random_weights=True, embedding_dim=8, **kwargs
        )

    donor = make()
    donor.load()
    head = {k: v for k, v in donor.module.state_dict().items() if k.startswith("head.")}
    good = tmp_path / "head.pt"
    torch.save(head, good)
    loaded = make(head_weights=str(good))
    loaded.load()
    for key, value in head.items():
        assert torch.equal(loaded.module.state_dict()[key], value)

    wrong = tmp_path / "wrong.pt"
    torch.save({"classifier.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(EncoderError) as info:
        make(head_weights=str(wrong)).load()
    message = str(info.value)
    assert "classifier.weight" in message and next(iter(head)) in message


# -- 6. simultaneous opens of a fresh embedded Chroma folder -----------------------------------
def test_chroma_open_retries_database_locked_then_says_store_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chromadb

    from langchain_image_embeddings.vectorstores import chroma
    from tests.unit_tests.store_crash_writer import PrecomputedEmbeddings

    real = chromadb.PersistentClient
    failures = {"left": 2}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("error returned from database: (code: 5) database is locked")
        return real(*args, **kwargs)

    from langchain_image_embeddings.vectorstores.chroma import _store as chroma_store

    monkeypatch.setattr(chroma_store, "BACKOFF_S", 0.01)  # where the open's retry loop reads it
    monkeypatch.setattr(chromadb, "PersistentClient", flaky)
    store = chroma.ChromaImageStore.persistent(tmp_path / "c", PrecomputedEmbeddings())  # type: ignore[arg-type]
    assert failures["left"] == 0 and len(store) == 0

    failures["left"] = 100
    with pytest.raises(StoreLockedError, match=str(tmp_path / "other")):
        chroma.ChromaImageStore.persistent(tmp_path / "other", PrecomputedEmbeddings())  # type: ignore[arg-type]


def test_five_simultaneous_chroma_starts_open_or_say_store_locked(tmp_path: Path) -> None:
    path = tmp_path / "chroma"
    start_at = time.time() + 6.0  # after every process has imported chromadb
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANONYMIZED_TELEMETRY": "False"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests/unit_tests/chroma_open_race.py"),
                str(path),
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=REPO,
        )
        for _ in range(5)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    outcomes = [(int(p.returncode), out) for p, out in zip(procs, outputs, strict=True)]
    bad = [(code, out[-1500:]) for code, out in outcomes if code not in (0, 3)]
    assert not bad, "\n".join(f"exit {code}: {out}" for code, out in bad)
    assert any(code == 0 for code, _ in outcomes)
    assert all(str(path) in out for code, out in outcomes if code == 3)


# -- 7. total_timeout covers name resolution ---------------------------------------------------
def test_total_timeout_covers_a_slow_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_image_embeddings.images._fetch import FetchLimits, fetch_url

    def slow_resolver(*args: Any, **kwargs: Any) -> Any:
        time.sleep(3.0)
        raise socket.gaierror("too slow anyway")

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    started = time.monotonic()
    with pytest.raises(ImageLoadError) as info:
        fetch_url("http://slow.example/cat.png", FetchLimits(total_timeout=0.5, timeout=5.0))
    assert time.monotonic() - started < 1.5
    assert info.value.code == "fetch_failed" and "0.5 s" in info.value.reason


# -- 8. a stock LangChain FAISS folder is not an empty image store -----------------------------
def test_stock_langchain_faiss_folder_is_refused_with_the_way_to_import_it(
    tmp_path: Path,
) -> None:
    from langchain_image_embeddings.vectorstores import FAISSImageStore
    from tests.unit_tests.store_crash_writer import PrecomputedEmbeddings

    folder = tmp_path / "stock"
    folder.mkdir()
    (folder / "index.faiss").write_bytes(b"\x00" * 8)
    (folder / "index.pkl").write_bytes(b"\x80\x04N.")
    embeddings: Any = PrecomputedEmbeddings()
    openers: list[Callable[[], object]] = [
        lambda: FAISSImageStore.open(folder, embeddings),
        lambda: FAISSImageStore(embeddings, folder),
        lambda: FAISSImageStore.load(folder),
    ]
    for open_it in openers:
        with pytest.raises(StoreError, match="import_langchain_faiss") as info:
            open_it()
        assert "stock LangChain FAISS folder" in str(info.value)
    assert sorted(p.name for p in folder.iterdir()) == ["index.faiss", "index.pkl"]


def test_faiss_store_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    from langchain_image_embeddings.vectorstores import FAISSImageStore
    from tests.unit_tests import store_crash_writer as writer

    embeddings: Any = writer.PrecomputedEmbeddings()
    store = FAISSImageStore(embeddings, tmp_path / "s")
    for n in range(2):
        store.upsert_vectors(
            [writer.item_id(n)], writer.item_vector(n)[None], [writer.item_document(n)]
        )
        store.save()
    store.close()
    names = sorted(p.name for p in (tmp_path / "s").iterdir() if not p.name.startswith("."))
    assert [n.split("-")[0] for n in names] == ["documents", "manifest.json", "vectors"]
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["generation"] == 2
    assert len(FAISSImageStore.load(tmp_path / "s", embeddings)) == 2
    shutil.rmtree(tmp_path / "s")
