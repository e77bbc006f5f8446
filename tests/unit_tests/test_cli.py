"""``imgemb index / search / info`` with the real EfficientNet-Lite0 weights, and exit codes."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from langchain_image_embeddings import cli
from langchain_image_embeddings.cli import exit_codes
from langchain_image_embeddings.samples import PHOTO_NAMES, TRANSFORMS

MODEL = "timm:efficientnet_lite0"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def lite0_loaded(lite0_embeddings: Any) -> None:
    """Load the weights once: later loads (each ``cli.main`` call) copy that model (the
    session's ``_reuse_lite0_weights`` fixture in tests/conftest.py)."""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["faiss", "chroma"])
def test_index_then_search_copies_find_their_originals(
    kind: str, photos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"{kind}:{tmp_path / 'store'}"
    code, out, _ = run(
        capsys,
        "index",
        str(photos_dir),
        "--store",
        store,
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--quiet",
        "--json",
    )
    summary = json.loads(out)
    n_files = len(PHOTO_NAMES) * (1 + len(TRANSFORMS))
    assert code == 0
    assert (summary["added"], summary["embedded"], summary["failed"], summary["total"]) == (
        n_files,
        n_files,
        0,
        n_files,
    )

    code, out, _ = run(capsys, "index", str(photos_dir), "--store", store, "--quiet", "--json")
    again = json.loads(out)
    assert (
        code == 0 and again["embedded"] == 0 and again["unchanged"] == n_files
    )  # model read from the store

    checked = 0
    for name in ("chelsea", "rocket"):
        for transform in ("crop", "flip", "small"):
            copy = photos_dir / "copies" / f"{name}-{transform}.jpg"
            code, out, _ = run(
                capsys,
                "search",
                "--image",
                str(copy),
                "--store",
                store,
                "-k",
                str(n_files),
                "--json",
                "--device",
                "cpu",
            )
            rows = json.loads(out)
            assert code == 0 and [r["rank"] for r in rows] == list(range(1, n_files + 1))
            # the copy itself is indexed too: it comes first, as an exact duplicate
            assert rows[0]["source"] == str(copy.resolve()) and rows[0]["score"] >= 0.99
            # and the best-ranked original photo is the one it was made from
            originals = [r for r in rows if "/copies/" not in r["source"]]
            assert Path(originals[0]["source"]).stem == name
            checked += 1
    assert checked == 6

    code, out, _ = run(capsys, "info", "--store", store, "--json")
    info = json.loads(out)
    assert code == 0 and info["count"] == n_files and info["model"] == MODEL and info["dim"] == 1280


def test_index_reports_failures_and_text_search_needs_clip(
    lite0_loaded: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], photos_dir: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photos_dir / "coins.jpg", folder / "coins.jpg")
    (folder / "bad.jpg").write_bytes(b"not an image")
    store = f"faiss:{tmp_path / 'idx'}"
    code, out, err = run(
        capsys,
        "index",
        str(folder),
        "--store",
        store,
        "--device",
        "cpu",
        "--quiet",
        "--skip-errors",
    )
    assert code == exit_codes.EXIT_OK  # --skip-errors: the readable image is indexed (issue 5)
    assert "added 1" in out and "failed 1" in out and "bad.jpg" in err
    code, out, err = run(capsys, "search", "coins", "--store", store)
    assert code == exit_codes.EXIT_MODEL and "text" in err
    code, out, _ = run(
        capsys, "search", "--image", str(folder / "coins.jpg"), "--store", store, "-k", "1"
    )
    assert code == 0 and out.strip().startswith("1. 1.0000") and out.strip().endswith("coins.jpg")
    code, out, _ = run(capsys, "info", "--store", store)
    assert code == 0 and "timm:efficientnet_lite0" in out


def test_usage_and_store_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(capsys, "search", "--store", "faiss:x")[0] == exit_codes.EXIT_USAGE
    )  # neither text nor image
    assert (
        run(capsys, "search", "q", "--image", "a.jpg", "--store", "faiss:x")[0]
        == exit_codes.EXIT_USAGE
    )
    assert run(capsys, "search", "q", "--store", "nosuchkind:x")[0] == exit_codes.EXIT_USAGE
    code, _, err = run(
        capsys, "search", "--image", "a.jpg", "--store", f"faiss:{tmp_path / 'none'}"
    )
    assert (
        code == exit_codes.EXIT_STORE and "no FAISS image store at" in err and "imgemb index" in err
    )
    assert run(capsys, "info", "--store", f"chroma:{tmp_path / 'none'}")[0] == exit_codes.EXIT_STORE
    assert (
        run(capsys, "index", str(tmp_path / "missing"), "--store", f"faiss:{tmp_path / 'i'}")[0]
        == exit_codes.EXIT_USAGE
    )
    with pytest.raises(SystemExit) as info:
        cli.main(["index"])
    assert info.value.code == exit_codes.EXIT_USAGE


def test_exit_codes_are_documented() -> None:
    doc = cli.__doc__ or ""
    for code in (
        exit_codes.EXIT_OK,
        exit_codes.EXIT_INPUT_ERRORS,
        exit_codes.EXIT_USAGE,
        exit_codes.EXIT_MODEL,
        exit_codes.EXIT_ERROR,
        exit_codes.EXIT_STORE,
    ):
        assert f"\n    {code}  " in doc
    docs_md = Path(__file__).parents[2] / "docs" / "cli.md"
    text = docs_md.read_text()
    assert all(f"| {code} " in text for code in range(6))


def test_finetune_subcommand_is_registered_when_available() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(sub.choices)  # type: ignore[arg-type]
    assert {"embed", "index", "search", "info", "models", "samples"} <= names
    has_training = importlib.util.find_spec("langchain_image_embeddings.cli.finetune") is not None
    assert ("finetune" in names) == has_training


def test_index_with_another_model_is_refused(
    tiny_clip_embeddings: Any,
    lite0_loaded: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from langchain_image_embeddings.vectorstores import FAISSImageStore
    from tests.unit_tests.store_helpers import write_folder

    folder = tmp_path / "imgs"
    FAISSImageStore.from_images(write_folder(folder, 2), tiny_clip_embeddings, tmp_path / "idx")
    store = f"faiss:{tmp_path / 'idx'}"
    code, _, err = run(capsys, "index", str(folder), "--store", store, "--model", MODEL, "--quiet")
    assert code == exit_codes.EXIT_STORE and "lie-tiny-clip" in err
    code, out, _ = run(capsys, "info", "--store", store, "--json")
    assert json.loads(out)["count"] == 2  # nothing was written
