"""What a new user of ``imgemb`` trips on: version, help, usage errors, empty folders, progress
bars, stray log lines, and local CLIP checkpoints through ``--pretrained`` / ``--model-kwargs``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_image_embeddings import __version__, cli
from langchain_image_embeddings.cli import common, exit_codes, logs
from langchain_image_embeddings.encoders import absolute_local_model
from tests.unit_tests.store_helpers import write_folder

LITE0 = "timm:efficientnet_lite0"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run argv, expecting argparse's usage error (exit 2); return stderr."""
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv))
    assert info.value.code == exit_codes.EXIT_USAGE
    return capsys.readouterr().err


def _parsers(parser: argparse.ArgumentParser, name: str = "imgemb") -> Iterator[Any]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


# -- version and help ---------------------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"imgemb {__version__}"


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{name}: {'/'.join(action.option_strings) or action.dest}"
        for name, parser in _parsers(cli.build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []


def test_top_level_help_shows_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["-h"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "imgemb index photos" in out and "--pretrained" in out
    assert "exit codes:" in out
    for code in range(6):
        assert f"\n  {code}  " in out  # RawDescriptionHelpFormatter keeps the table's lines


# -- usage errors -------------------------------------------------------------------------------
def test_filter_without_equals_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "search", "a cat", "--filter", "format")
    assert "--filter" in err and "KEY=VALUE" in err and "'format'" in err
    assert "dictionary update sequence" not in err
    args = cli.build_parser().parse_args(
        ["search", "q", "--filter", "format=JPEG", "--filter", "a=b=c"]
    )
    assert dict(args.filter) == {"format": "JPEG", "a": "b=c"}


@pytest.mark.parametrize("command", ["embed", "index", "search"])
def test_pretrained_and_model_kwargs_on_every_model_command(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parse = cli.build_parser().parse_args
    args = parse([command, "x", "--pretrained", "/m/clip.safetensors"])
    assert common.model_kwargs(args) == {"pretrained": "/m/clip.safetensors"}
    args = parse([command, "x", "--model-kwargs", '{"cache_dir": "/m", "pretrained": "a"}'])
    assert common.model_kwargs(args) == {"cache_dir": "/m", "pretrained": "a"}
    args = parse([command, "x", "--model-kwargs", '{"pretrained": "a"}', "--pretrained", "b"])
    assert common.model_kwargs(args) == {"pretrained": "b"}  # --pretrained wins
    assert "not valid JSON" in usage_error(capsys, command, "x", "--model-kwargs", "{bad")
    assert "JSON object" in usage_error(capsys, command, "x", "--model-kwargs", "[1, 2]")


# -- empty folders and filters matching nothing -------------------------------------------------
def test_index_on_an_empty_folder_says_so_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    store = tmp_path / "store"
    code, out, err = run(capsys, "index", str(empty), "--store", f"faiss:{store}", "--quiet")
    assert code == exit_codes.EXIT_USAGE and out == ""
    assert f"no image files in {empty}" in err and "--allow-empty" in err
    assert not store.exists()
    code, _, err = run(capsys, "embed", str(empty), "--quiet")
    assert code == exit_codes.EXIT_USAGE and "no image files" in err

    code, out, _ = run(
        capsys, "index", str(empty), "--store", f"faiss:{store}", "--model", LITE0,
        "--device", "cpu", "--quiet", "--allow-empty", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["total"] == 0 and store.exists()


def test_an_emptied_folder_does_not_wipe_its_store(
    lite0_embeddings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "imgs"
    paths = write_folder(folder, 2)
    store = f"faiss:{tmp_path / 'store'}"
    base = ["index", str(folder), "--store", store, "--device", "cpu", "--quiet"]
    assert run(capsys, *base, "--model", LITE0)[0] == 0
    for path in paths:
        path.unlink()  # e.g. an unmounted drive
    code, _, err = run(capsys, *base)
    assert code == exit_codes.EXIT_USAGE and "no image files" in err
    code, out, _ = run(capsys, "info", "--store", store, "--json")
    assert json.loads(out)["count"] == 2


def test_a_filter_matching_no_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "imgs"
    write_folder(folder, 2)  # PNGs
    store = tmp_path / "store"
    base = ["index", str(folder), "--store", f"faiss:{store}", "--quiet"]
    code, _, err = run(capsys, *base, "--glob", "*.jpg")
    assert (
        code == exit_codes.EXIT_USAGE and f"no image file in {folder} matches --glob '*.jpg'" in err
    )
    code, _, err = run(capsys, *base, "--exclude", "img*")
    assert code == exit_codes.EXIT_USAGE and "matches --exclude 'img*'" in err
    assert not store.exists()


# -- progress bars ------------------------------------------------------------------------------
def test_progress_bars_only_on_a_terminal_or_when_asked(
    lite0_embeddings: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "imgs"
    write_folder(folder, 2)
    base = ["embed", str(folder), "--model", LITE0, "--device", "cpu"]
    code, _, err = run(capsys, *base)  # stderr is captured: not a terminal
    assert code == 0 and "embedding" not in err
    code, _, err = run(capsys, *base, "--progress")
    assert code == 0 and "embedding" in err and "img" in err  # the tqdm bar

    parse = cli.build_parser().parse_args
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert common.show_progress(parse(["index", "d"]))
    assert not common.show_progress(parse(["index", "d", "--quiet"]))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not common.show_progress(parse(["embed", "d"]))
    assert common.show_progress(parse(["embed", "d", "--progress"]))
    assert not common.show_progress(parse(["embed", "d", "--progress", "--quiet"]))


# -- open_clip's stray log line -----------------------------------------------------------------
def test_open_clip_load_failure_prints_one_error_line_and_no_root_log(tmp_path: Path) -> None:
    """open_clip logs ``logging.error`` on the root logger before raising; in a fresh process
    (no logging configured) that used to print ``ERROR:root:...`` above our own error.

    A missing checkpoint is now refused before open_clip is imported (see the next test for
    open_clip's own ``logging.error``); this one runs the real entry point in a fresh process."""
    folder = tmp_path / "imgs"
    write_folder(folder, 1)
    missing = tmp_path / "missing.safetensors"
    argv = [
        "embed", str(folder), "--model", "open_clip:ViT-B-32", "--pretrained", str(missing),
        "--device", "cpu", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "langchain_image_embeddings.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert proc.returncode == exit_codes.EXIT_MODEL, proc.stderr
    assert "ERROR:root" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]


def test_open_clip_own_error_log_adds_no_root_handler_and_no_stray_line(
    tiny_clip_name: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """open_clip's ``logging.error`` (a known tag that cannot be downloaded offline) in a
    process whose root logger has no handlers, as in a fresh ``imgemb``: in-process, with
    pytest's own root handlers taken off for the call."""
    import logging

    folder = tmp_path / "imgs"
    write_folder(folder, 1)
    argv = [
        "embed", str(folder), "--model", "open_clip:ViT-B-32",
        "--pretrained", "laion2b_s34b_b79k", "--device", "cpu", "--quiet",
    ]  # fmt: skip
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for handler in handlers:
        root.removeHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HF_HUB_OFFLINE", "1")
            patch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to find
            code = cli.main(argv)
        added = list(root.handlers)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    err = capfd.readouterr().err
    assert code == exit_codes.EXIT_MODEL, err
    assert added == []  # logging.error did not run basicConfig (a stderr handler)
    assert "ERROR:root" not in err and "Failed to download" in err  # open_clip's own failure
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "laion2b_s34b_b79k" in lines[0]


def test_a_missing_checkpoint_is_refused_before_open_clip_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``import open_clip`` takes seconds (its CoCa and Hugging Face towers): a mistyped
    ``--pretrained`` path is said before it."""
    from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder
    from langchain_image_embeddings.errors import WeightsNotFoundError

    monkeypatch.setitem(sys.modules, "open_clip", None)  # any import of it raises ImportError
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(WeightsNotFoundError, match=f"no file or folder at {missing}"):
        OpenCLIPEncoder("ViT-B-32", pretrained=str(missing)).load()


def test_root_logging_is_quiet_only_during_a_command() -> None:
    import logging

    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    with logs.no_stray_root_logging():
        assert not root.filter(root.makeRecord("root", logging.ERROR, "f", 1, "x", (), None))
    assert root.handlers == handlers and root.filters == filters


# -- a local CLIP checkpoint through --pretrained / --model-kwargs ------------------------------
@pytest.fixture
def tiny_clip_checkpoint(tiny_clip_name: str, tmp_path: Path) -> Path:
    """Seeded random weights of the tiny test CLIP, saved as a local checkpoint file."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model(tiny_clip_name, pretrained=None)
    path = tmp_path / "tiny-clip.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.usefixtures("one_torch_thread")
def test_local_checkpoint_through_pretrained_for_index_and_search(
    tiny_clip_name: str,
    tiny_clip_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "imgs"
    write_folder(folder, 3)
    store = f"faiss:{tmp_path / 'clip-index'}"
    ckpt = str(tiny_clip_checkpoint)
    common = ["--store", store, "--device", "cpu"]
    code, out, err = run(
        capsys, "index", str(folder), *common, "--quiet", "--json",
        "--model", f"open_clip:{tiny_clip_name}", "--pretrained", ckpt,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["added"] == 3

    # The store's recorded model, with the command line's model kwargs applied to it.
    code, out, err = run(
        capsys, "index", str(folder), *common, "--quiet", "--json",
        "--model-kwargs", json.dumps({"pretrained": ckpt}),
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["unchanged"] == 3
    code, out, err = run(capsys, "search", "a photo", *common, "--pretrained", ckpt, "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 3
    image = str(folder / "img01.png")
    code, out, err = run(
        capsys, "search", "--image", image, *common, "-k", "1", "--pretrained", ckpt
    )
    assert code == 0 and out.strip().endswith("img01.png"), err
    # Without the checkpoint the recorded architecture has no weights to load.
    code, _, err = run(capsys, "search", "a photo", *common)
    assert code == exit_codes.EXIT_MODEL and "pretrained" in err


def test_embed_lists_files_through_the_loader(
    lite0_embeddings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``imgemb embed`` walks a folder as the loader does: hidden files skipped, a symlink loop
    and a symlink leaving the folder reported with their codes (not followed, no traceback)."""
    folder = tmp_path / "imgs"
    write_folder(folder, 2)
    write_folder(folder / ".cache", 1)
    outside = write_folder(tmp_path / "outside", 1)[0]
    (folder / "escape.png").symlink_to(outside)
    (folder / "loop.png").symlink_to("loop.png")
    code, out, _ = run(
        capsys, "embed", str(folder), "--model", LITE0, "--device", "cpu", "--json", "--quiet"
    )
    summary = json.loads(out)
    assert code == exit_codes.EXIT_INPUT_ERRORS
    assert (summary["images"], summary["embedded"], summary["failed"]) == (4, 2, 2)
    codes = {Path(e["input"]).name: e["code"] for e in summary["errors"]}
    assert codes == {"escape.png": "outside_root", "loop.png": "not_found"}


def test_a_closed_pipe_ends_quietly() -> None:
    """``imgemb ... | head``: no BrokenPipeError traceback, the shell's SIGPIPE status."""
    code = (
        "import os, sys\n"
        "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
        "from langchain_image_embeddings.cli import main\n"
        "sys.exit(main(['models']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == exit_codes.EXIT_BROKEN_PIPE, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


# -- probe round: filters, local: models, option errors -----------------------------------------
@pytest.mark.parametrize("kind", ["faiss", "chroma"])
def test_search_filters_compare_numbers_and_combine_on_every_store(
    kind: str, lite0_embeddings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--filter width=48`` matched nothing (the string "48" against the stored integer),
    and two ``--filter`` on Chroma failed with exit 5 (a dict of two keys, not ``$and``)."""
    from tests.unit_tests.store_helpers import write_image

    folder = tmp_path / "imgs"
    for i, size in enumerate((40, 48, 48)):
        write_image(folder / f"img{i}.png", seed=i, size=size)
    store = f"{kind}:{tmp_path / 'store'}"
    assert run(capsys, "index", str(folder), "--store", store, "--model", LITE0, "--quiet")[0] == 0
    search = ["search", "--image", str(folder / "img1.png"), "--store", store, "-k", "3", "--json"]
    code, out, err = run(capsys, *search, "--filter", "width=48")
    assert code == 0, err
    assert sorted(Path(r["source"]).name for r in json.loads(out)) == ["img1.png", "img2.png"]
    code, out, err = run(capsys, *search, "--filter", "width=48", "--filter", "format=PNG")
    assert code == 0, err
    assert sorted(Path(r["source"]).name for r in json.loads(out)) == ["img1.png", "img2.png"]
    code, out, _ = run(capsys, *search, "--filter", "width=48", "--filter", "format=JPEG")
    assert code == 0 and json.loads(out) == []


def test_a_relative_local_model_is_recorded_absolute(
    tiny_clip_encoder: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``index --model local:my-model`` recorded the relative path, so ``search`` (or
    ``serve``) run from any other folder could not load the store's model (exit 3)."""
    from langchain_image_embeddings.encoders.local import save_pretrained

    work = tmp_path / "work"
    save_pretrained(tiny_clip_encoder, work / "my-model")
    folder = write_folder(tmp_path / "imgs", 2)[0].parent
    store = f"faiss:{tmp_path / 'store'}"
    monkeypatch.chdir(work)
    index = ["index", str(folder), "--store", store, "--model", "local:my-model", "--quiet"]
    assert run(capsys, *index, "--device", "cpu")[0] == 0
    monkeypatch.chdir(tmp_path)  # elsewhere: the store's recorded model must still load
    code, out, err = run(capsys, "info", "--store", store, "--json")
    assert json.loads(out)["model"] == f"local:{(work / 'my-model').resolve()}"
    query = ["search", "--image", str(folder / "img01.png"), "--store", store, "-k", "1"]
    code, out, err = run(capsys, *query, "--device", "cpu")
    assert code == 0 and out.strip().endswith("img01.png"), err
    assert absolute_local_model("local:missing-model") == "local:missing-model"
    assert absolute_local_model(LITE0) == LITE0


def test_an_invalid_device_is_one_plain_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "imgs"
    write_folder(folder, 1)
    code, _, err = run(capsys, "embed", str(folder), "--device", "banana", "--quiet")
    assert code == exit_codes.EXIT_USAGE
    assert err.strip().startswith("error: device must be") and "'banana'" in err
    assert "validation error" not in err and "pydantic" not in err and len(err.splitlines()) == 1


def test_serve_on_a_port_in_use_is_one_error_not_a_model_error(
    lite0_embeddings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The port was taken: ``serve`` printed "serving ... at URL", then uvicorn exited with
    status 3, which the exit-code table reads as "the model could not be loaded"."""
    pytest.importorskip("uvicorn")
    import socket

    from langchain_image_embeddings.vectorstores import FAISSImageStore

    FAISSImageStore.from_images(
        write_folder(tmp_path / "imgs", 2), lite0_embeddings, tmp_path / "s"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        code, out, err = run(capsys, "serve", "--store", f"faiss:{tmp_path / 's'}", "--port", port)
    assert code == exit_codes.EXIT_ERROR and out == ""
    assert err.startswith(f"error: cannot listen on 127.0.0.1 port {port}") and "--port" in err


def test_output_paths_and_empty_queries_are_usage_errors_not_tracebacks(
    lite0_embeddings: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``embed --out new/dir/v`` died after embedding (FileNotFoundError), ``samples FILE`` with
    FileExistsError, and ``search ""`` was sent to the model as a query."""
    import numpy as np

    folder = write_folder(tmp_path / "imgs", 2)[0].parent
    (tmp_path / "file").write_text("x")
    embed = ["embed", str(folder), "--model", LITE0, "--device", "cpu", "--quiet", "--json"]
    code, out, err = run(capsys, *embed, "--out", str(tmp_path / "new" / "dir" / "v"))
    assert code == 0, err
    written = tmp_path / "new" / "dir" / "v.npy"
    assert json.loads(out)["vectors_file"] == str(written)
    assert np.load(written).shape == (2, 1280)
    code, _, err = run(capsys, *embed, "--out", str(tmp_path / "file" / "v.npy"))
    assert (
        code == exit_codes.EXIT_USAGE and err.startswith("error: --out") and "Traceback" not in err
    )
    code, _, err = run(capsys, "samples", str(tmp_path / "file"))
    assert code == exit_codes.EXIT_USAGE and "is a file" in err
    code, _, err = run(capsys, "search", "  ", "--store", f"faiss:{tmp_path / 'none'}")
    assert code == exit_codes.EXIT_USAGE and err == "error: the text query is empty\n"


def test_an_unreachable_store_says_why_not_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Chroma server that is down was reported as "no store at ... run 'imgemb index'"."""
    import socket

    with socket.socket() as closed:  # a loopback port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    store = f"chroma+http://127.0.0.1:{port}/photos"
    code, _, err = run(capsys, "search", "--image", "x.png", "--store", store)
    assert code == exit_codes.EXIT_STORE and "Could not connect" in err and store in err


def test_bad_report_path_and_serve_limits_fail_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``index --report DIR`` embedded everything, then died with IsADirectoryError; ``serve
    --max-k 0`` or a missing ``--image-root`` started a server whose every search (or
    thumbnail) failed."""
    folder = write_folder(tmp_path / "imgs", 1)[0].parent
    (tmp_path / "reports").mkdir()
    store = tmp_path / "store"
    code, _, err = run(
        capsys,
        "index",
        str(folder),
        "--store",
        f"faiss:{store}",
        "--report",
        str(tmp_path / "reports"),
    )
    assert code == exit_codes.EXIT_USAGE and "--report" in err and "is a folder" in err
    assert not store.exists()  # nothing embedded, no store started
    serve = ["serve", "--store", f"faiss:{tmp_path / 'none'}", "--port", "0"]
    for extra, says in (
        (["--max-k", "0"], "max_k must be at least 1"),
        (["--max-upload-mb", "0"], "max_upload_bytes must be at least 1"),
        (["--max-upload-memory-mb", "0"], "max_upload_memory must be at least 1"),
        (["--image-root", str(tmp_path / "missing")], "is not a directory"),
    ):
        code, out, err = run(capsys, *serve, *extra)
        assert code == exit_codes.EXIT_USAGE and says in err and out == "", err
