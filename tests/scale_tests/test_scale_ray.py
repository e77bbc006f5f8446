"""The Ray engine on a local Ray of 2 CPUs with one actor (session-scoped: ~10 s to start)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.scale import EmbedSettings, plan_shards, shard_files
from tests.scale_tests.corpus import BAD_FILES, listening_addresses, read_rows, write_corpus

pytestmark = pytest.mark.integration

pytest.importorskip("ray.data")

_DRIVER = """
import sys
from langchain_image_embeddings.scale import EmbedSettings, plan_shards
from langchain_image_embeddings.scale.ray import RayOptions, embed_dataset_ray
corpus, out, model, address = sys.argv[1:5]
embed_dataset_ray(
    plan_shards(corpus, shard_size=5), out, EmbedSettings(model, batch_size=4, device="cpu"),
    RayOptions(address=address, num_actors=1, actor_batch_size=5, read_batch_size=5),
)
"""


def test_command_starts_and_stops_its_own_local_ray(scale_model: str, tmp_path: Path) -> None:
    """First in this module, before the session's Ray: ``imgemb embed-dataset --engine ray``
    starts a private Ray with its files under OUT/_ray, writes nothing to the home
    directory, prints nothing with ``--quiet --json`` but the summary, and shuts it down
    (the folder is removed after a successful run)."""
    corpus = tmp_path / "small"
    write_corpus(corpus, count=12)
    home = tmp_path / "home"
    home.mkdir()
    out = Path(tempfile.mkdtemp(prefix="imgemb-")) / "out"  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(tmp_path / "cache"), RAY_USAGE_STATS_ENABLED="0")
    cmd = [sys.executable, "-m", "langchain_image_embeddings.cli", "embed-dataset", str(corpus)]
    cmd += ["--out", str(out), "--engine", "ray", "--local-cpus", "2", "--model", scale_model]
    cmd += ["--device", "cpu", "--shard-size", "8", "--quiet", "--json"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 1, done.stderr[-3000:]  # the corpus holds 4 bad files
        # --quiet --json: nothing on stderr, Ray's own lines included (the driver's
        # core_worker line per actor, Ray Data's INFO/WARNING lines, deprecation warnings)
        assert not done.stderr.strip(), done.stderr[-3000:]
        summary = json.loads(done.stdout)
        assert (summary["engine"], summary["embedded"], summary["shards_written"]) == ("ray", 13, 3)
        assert sorted(p.name for p in out.iterdir()) == [
            f"shard-00000{i}.parquet" for i in range(3)
        ]
        assert list(home.iterdir()) == []
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def test_a_long_out_path_leaves_nothing_in_the_system_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's folder for an output path too long for its socket paths is ``OUT/_ray`` reached
    through a short link named after it: a killed run (its link not removed) leaves that link
    only, which the next run into the same folder reuses; links to folders gone since are
    removed. It was a fresh ``imgemb-ray-*`` folder per run, left behind by a kill."""
    from langchain_image_embeddings.scale import ray_session

    system_temp = Path(tempfile.mkdtemp(prefix="t"))  # a private, short "system temp folder"
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    try:
        wanted = tmp_path / ("long-" * 12) / "out" / "_ray"
        temp, made = ray_session._short_temp_dir(wanted)
        assert made == temp and len(temp) <= ray_session._MAX_TEMP_DIR
        assert Path(temp).is_symlink() and Path(temp).resolve() == wanted.resolve()
        (Path(temp) / "session_x").mkdir()  # Ray's files land in OUT/_ray
        assert (wanted / "session_x").is_dir()
        # killed: the link stays; the next run into the same folder reuses the same name
        again, made_again = ray_session._short_temp_dir(wanted)
        assert (again, made_again) == (temp, temp)
        # a killed run into another folder, deleted since: its link goes at the next start
        other = tmp_path / ("gone-" * 12) / "_ray"
        ray_session._short_temp_dir(other)
        assert len(list(system_temp.iterdir())) == 2
        shutil.rmtree(other.parent)
        ray_session._short_temp_dir(wanted)
        assert list(system_temp.iterdir()) == [Path(temp)]
        ray_session._remove_temp(made)  # the end of a run: the link, never its target
        assert list(system_temp.iterdir()) == [] and (wanted / "session_x").is_dir()
    finally:
        shutil.rmtree(system_temp, ignore_errors=True)


def test_a_run_into_a_long_out_path_cleans_what_a_killed_one_left(
    scale_model: str, tmp_path: Path
) -> None:
    """Before the session's Ray: a local Ray runs through the short link into a long
    ``OUT/_ray``, replaces the link a killed run into the same folder left, and afterwards
    nothing is left in the system temp folder, nor ``OUT/_ray``."""
    from langchain_image_embeddings.scale import ray_session

    corpus = tmp_path / "small"
    write_corpus(corpus, count=6)
    system_temp = Path(tempfile.mkdtemp(prefix="t"))
    out = tmp_path / ("long-" * 12) / "out"
    assert len(str((out / "_ray").resolve())) > ray_session._MAX_TEMP_DIR
    saved = tempfile.tempdir
    tempfile.tempdir = str(system_temp)
    try:  # what a run killed before it could clean up left: its link (and OUT/_ray)
        left, _ = ray_session._short_temp_dir(out / "_ray")
    finally:
        tempfile.tempdir = saved
    assert [p.name for p in system_temp.iterdir()] == [Path(left).name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(TMPDIR=str(system_temp), RAY_USAGE_STATS_ENABLED="0")
    cmd = [sys.executable, "-m", "langchain_image_embeddings.cli", "embed-dataset", str(corpus)]
    cmd += ["--out", str(out), "--engine", "ray", "--local-cpus", "2", "--model", scale_model]
    cmd += ["--device", "cpu", "--shard-size", "4", "--quiet", "--json"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 1, done.stderr[-3000:]  # the corpus holds 4 bad files
        assert json.loads(done.stdout)["shards_written"] == 3
        assert list(system_temp.iterdir()) == []
        assert sorted(p.name for p in out.iterdir()) == [
            f"shard-00000{i}.parquet" for i in range(3)
        ]
    finally:
        shutil.rmtree(system_temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_shards(
    local_ray: str, scale_corpus: Path, scale_model: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Any]:
    from langchain_image_embeddings.scale.ray import RayOptions, embed_dataset_ray

    out = tmp_path_factory.mktemp("ray-shards")
    summary = embed_dataset_ray(
        plan_shards(scale_corpus, shard_size=25),
        out,
        EmbedSettings(scale_model, batch_size=16, device="cpu"),
        RayOptions(num_actors=1, cpus_per_actor=1),
    )
    return out, summary


def test_local_ray_listens_on_loopback_only(local_ray: str) -> None:
    addresses = listening_addresses(os.getpid())
    assert addresses, "found no listening socket of the Ray processes"
    assert addresses <= {"127.0.0.1"}, addresses
    assert local_ray.startswith("127.0.0.1:")


def test_ray_vectors_equal_single_process(
    ray_shards: tuple[Path, Any], reference_vectors: dict[str, Any], scale_corpus: Path
) -> None:
    out, summary = ray_shards
    assert (summary.engine, summary.shards_written, summary.embedded) == ("ray", 9, 197)
    rows = read_rows(out)
    assert len(rows) == 201
    good = [r for r in rows if r["error_code"] is None]
    assert {r["source"] for r in good} == set(reference_vectors)
    got = np.array([r["vector"] for r in good], dtype=np.float32)
    want = np.stack([reference_vectors[str(r["source"])] for r in good])
    assert float(np.abs(got - want).max()) <= 1e-5
    failed = {s: c for s, c, _ in summary.failures}
    assert failed == {str((scale_corpus / f).resolve()): code for f, code in BAD_FILES.items()}
    assert {r["source"]: r["error_code"] for r in rows if r["error_code"]} == failed


def test_ray_rerun_writes_nothing_new(
    ray_shards: tuple[Path, Any], scale_corpus: Path, scale_model: str
) -> None:
    from langchain_image_embeddings.scale.ray import RayOptions, embed_dataset_ray

    out, _ = ray_shards
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shard_files(out)}
    summary = embed_dataset_ray(
        plan_shards(scale_corpus, shard_size=25),
        out,
        EmbedSettings(scale_model, batch_size=16, device="cpu"),
        RayOptions(num_actors=1),
    )
    assert (summary.shards_written, summary.shards_skipped) == (0, 9)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shard_files(out)} == before


def test_killed_ray_driver_resumes_to_the_rows_of_an_uninterrupted_run(
    local_ray: str,
    ray_shards: tuple[Path, Any],
    scale_corpus: Path,
    scale_model: str,
    tmp_path: Path,
) -> None:
    from langchain_image_embeddings.scale.ray import RayOptions, embed_dataset_ray

    out = tmp_path / "out"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    args = [sys.executable, "-c", _DRIVER, str(scale_corpus), str(out), scale_model, local_ray]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not list(out.glob("shard-*.parquet")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(out.glob("shard-*.parquet")))
    assert 0 < written < 41, "the driver was not killed mid-way"
    summary = embed_dataset_ray(
        plan_shards(scale_corpus, shard_size=5),
        out,
        EmbedSettings(scale_model, batch_size=4, device="cpu"),
        RayOptions(num_actors=1, actor_batch_size=20),
    )
    assert (
        summary.shards_skipped >= written and summary.shards_written == 41 - summary.shards_skipped
    )
    resumed, reference = read_rows(out), read_rows(ray_shards[0])
    for key in ("source", "id", "sha256", "error_code", "width", "height", "format", "mtime"):
        assert [r[key] for r in resumed] == [r[key] for r in reference], key
    pairs = [
        (a["vector"], b["vector"]) for a, b in zip(resumed, reference, strict=True) if a["vector"]
    ]
    assert len(pairs) == 197
    assert max(float(np.abs(np.subtract(a, b)).max()) for a, b in pairs) <= 1e-5


def test_cli_ray_engine_on_the_running_ray(
    local_ray: str,
    scale_corpus: Path,
    scale_model: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cli"
    args = ["embed-dataset", str(scale_corpus), "--out", str(out), "--engine", "ray"]
    args += ["--model", scale_model, "--device", "cpu", "--shard-size", "100", "--quiet", "--json"]
    assert main(args) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["engine"], summary["embedded"], summary["failed"]) == ("ray", 197, 4)
    assert summary["shards_written"] == 3
    too_big = [*args, "--num-cpus", "2"]
    assert main(too_big) == 0  # every shard is complete: Ray is not even asked
    capsys.readouterr()
    assert main([*too_big[:3], str(tmp_path / "other"), *too_big[4:]]) == 2
    assert "leaves no CPU for the read tasks" in capsys.readouterr().err


def test_the_engines_write_the_same_rows(
    ray_shards: tuple[Path, Any], scale_corpus: Path, scale_embeddings: Any, tmp_path: Path
) -> None:
    """The local and the Ray engine write the same shard rows for the same inputs, failed rows
    included: Ray wrote a null ``sha256`` for a truncated JPEG whose bytes were read and
    hashed (the local engine recorded it)."""
    from langchain_image_embeddings.scale import embed_dataset

    embed_dataset(plan_shards(scale_corpus, shard_size=25), tmp_path / "local", scale_embeddings)
    local, ray = read_rows(tmp_path / "local"), read_rows(ray_shards[0])
    assert [r["source"] for r in local] == [r["source"] for r in ray]
    failed = [(a, b) for a, b in zip(local, ray, strict=True) if a["error_code"] is not None]
    assert len(failed) == len(BAD_FILES)
    for a, b in failed:
        assert a == b, a["source"]
    truncated = next(a for a, _ in failed if a["error_code"] == "truncated")
    data = (scale_corpus / "bad" / "truncated.jpg").read_bytes()
    assert truncated["sha256"] == hashlib.sha256(data).hexdigest()
    for a, b in zip(local, ray, strict=True):
        assert {k: v for k, v in a.items() if k != "vector"} == {
            k: v for k, v in b.items() if k != "vector"
        }, a["source"]
        if a["vector"] is not None:
            got, want = np.asarray(a["vector"]), np.asarray(b["vector"])
            assert float(np.abs(got - want).max()) <= 1e-5
