"""The engine-free core: shard plan, Parquet shards, the local engine, bulk load, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.errors import ModelMismatchError, StoreError
from langchain_image_embeddings.scale import (
    embed_dataset,
    load_shards,
    plan_shards,
    read_shard_info,
    shard_files,
)
from langchain_image_embeddings.vectorstores import ChromaImageStore, FAISSImageStore
from langchain_image_embeddings.vectorstores._records import content_id, model_record
from tests.scale_tests.corpus import BAD_FILES, DUPLICATE, read_rows, search_results


@pytest.fixture(scope="module")
def local_shards(
    scale_corpus: Path, scale_embeddings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The corpus embedded once by the local engine (shards of 25)."""
    out = tmp_path_factory.mktemp("local-shards")
    embed_dataset(plan_shards(scale_corpus, shard_size=25), out, scale_embeddings)
    return out


def _stamps(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shard_files(out)}


# -- the plan ----------------------------------------------------------------------------
def test_plan_is_deterministic_and_tracks_changed_files(scale_corpus: Path, tmp_path: Path) -> None:
    one = plan_shards(scale_corpus, shard_size=25)
    assert one == plan_shards(scale_corpus, shard_size=25)
    assert [len(s) for s in one.shards] == [25] * 8 + [1] and one.total == 201
    assert [s.file_name for s in one.shards][:2] == ["shard-000000.parquet", "shard-000001.parquet"]
    folder = tmp_path / "copy"
    shutil.copytree(scale_corpus, folder)
    before = plan_shards(folder, shard_size=25)
    victim = Path(before.shards[3].inputs[0])
    victim.write_bytes(victim.read_bytes() + b"\0")  # same path, new bytes
    after = plan_shards(folder, shard_size=25)
    changed = [
        a.index for a, b in zip(after.shards, before.shards, strict=True) if a.digest != b.digest
    ]
    assert changed == [3]


def test_plan_from_list_and_tables(tmp_path: Path) -> None:
    uris = [f"/data/{n}.jpg" for n in range(5)]
    assert [s.inputs for s in plan_shards(uris, shard_size=2).shards] == [
        tuple(uris[0:2]),
        tuple(uris[2:4]),
        tuple(uris[4:]),
    ]
    pq.write_table(pa.table({"id": [1, 2, 3, 4, 5], "url": uris}), tmp_path / "u.parquet")
    (tmp_path / "u.csv").write_text("uri\n" + "\n".join(uris) + "\n")
    assert plan_shards(tmp_path / "u.parquet", column="url", shard_size=2).shards[
        0
    ].inputs == tuple(uris[:2])
    assert plan_shards(tmp_path / "u.csv", shard_size=10).shards[0].inputs == tuple(uris)
    with pytest.raises(ValueError, match="no column 'uri/path/source'"):
        plan_shards(tmp_path / "u.parquet")
    with pytest.raises(ValueError, match="does not exist"):
        plan_shards(tmp_path / "missing")
    with pytest.raises(ValueError, match="shard_size"):
        plan_shards(uris, shard_size=0)


def test_a_list_source_of_other_types_names_the_item() -> None:
    """bytes or None in a list of inputs raised a bare TypeError from the digest."""
    assert plan_shards([Path("a.jpg"), "b.jpg"]).shards[0].inputs == ("a.jpg", "b.jpg")
    with pytest.raises(ValueError, match=r"input #1 b'\\xff\\xd8' \(bytes\)"):
        plan_shards(["a.jpg", b"\xff\xd8"])
    with pytest.raises(ValueError, match=r"input #0 None \(NoneType\)"):
        plan_shards([None])


# -- the shards --------------------------------------------------------------------------
def test_local_shards_equal_single_process_vectors(
    local_shards: Path, scale_embeddings: Any, reference_vectors: dict[str, Any], scale_corpus: Path
) -> None:
    rows = read_rows(local_shards)
    assert len(rows) == 201 and len({r["source"] for r in rows}) == 201
    good = [r for r in rows if r["error_code"] is None]
    assert {r["source"] for r in good} == set(reference_vectors)
    got = np.array([r["vector"] for r in good], dtype=np.float32)
    want = np.stack([reference_vectors[str(r["source"])] for r in good])
    assert float(np.abs(got - want).max()) <= 1e-5
    model_id = scale_embeddings.model_id
    assert all(r["id"] == content_id(str(r["sha256"]), model_id) for r in good)
    failed = {r["source"]: r["error_code"] for r in rows if r["error_code"] is not None}
    assert failed == {str((scale_corpus / f).resolve()): code for f, code in BAD_FILES.items()}
    assert all(r["vector"] is None and r["id"] is None for r in rows if r["error_code"])
    schema = pq.read_schema(shard_files(local_shards)[0])
    assert schema.field("vector").type == pa.list_(pa.float32(), 64)
    info = read_shard_info(shard_files(local_shards)[0])
    assert info.model_record == json.loads(json.dumps(model_record(scale_embeddings)))
    assert (info.index, info.rows) == (0, 25)


def test_rerun_writes_nothing_and_other_model_is_refused(
    local_shards: Path, scale_corpus: Path, scale_embeddings: Any, lite0_embeddings: Any
) -> None:
    before = _stamps(local_shards)
    plan = plan_shards(scale_corpus, shard_size=25)
    summary = embed_dataset(plan, local_shards, scale_embeddings)
    assert (summary.shards_written, summary.shards_skipped, summary.embedded) == (0, 9, 0)
    assert _stamps(local_shards) == before
    with pytest.raises(ModelMismatchError, match="use another output folder"):
        embed_dataset(plan, local_shards, lite0_embeddings)
    assert _stamps(local_shards) == before


def test_killed_local_run_resumes_to_the_same_rows(
    local_shards: Path, scale_corpus: Path, scale_model: str, scale_embeddings: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "langchain_image_embeddings.cli", "embed-dataset", str(scale_corpus),
        "--out", str(out), "--model", scale_model, "--shard-size", "5", "--batch-size", "4",
        "--device", "cpu", "--quiet",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob("shard-*.parquet")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(list(out.glob("shard-*.parquet")))
    assert 0 < written < 41, "the run was not killed mid-way"
    summary = embed_dataset(plan_shards(scale_corpus, shard_size=5), out, scale_embeddings)
    assert (
        summary.shards_skipped >= written and summary.shards_written == 41 - summary.shards_skipped
    )
    assert not list(out.glob("*.tmp"))
    resumed = read_rows(out)
    reference = read_rows(local_shards)
    assert [r["source"] for r in resumed] == [r["source"] for r in reference]
    assert [r["id"] for r in resumed] == [r["id"] for r in reference]
    assert [r["error_code"] for r in resumed] == [r["error_code"] for r in reference]
    pairs = [
        (a["vector"], b["vector"]) for a, b in zip(resumed, reference, strict=True) if a["vector"]
    ]
    assert max(float(np.abs(np.subtract(a, b)).max()) for a, b in pairs) <= 1e-5


# -- bulk load ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "backend", ["faiss", "chroma", pytest.param("milvus", marks=pytest.mark.slow)]
)
def test_load_matches_indexing_the_folder(
    backend: str, local_shards: Path, scale_corpus: Path, scale_embeddings: Any, tmp_path: Path
) -> None:
    def make(name: str) -> Any:
        if backend == "faiss":
            return FAISSImageStore(scale_embeddings, tmp_path / name)
        if backend == "milvus":
            pytest.importorskip("pymilvus")
            from langchain_image_embeddings.vectorstores import MilvusImageStore

            return MilvusImageStore.connect(str(tmp_path / f"{name}.db"), scale_embeddings)
        return ChromaImageStore.persistent(tmp_path / name, scale_embeddings)

    direct, loaded = make("direct"), make("loaded")
    from langchain_image_embeddings.sync import sync_directory

    sync_directory(direct, scale_corpus)
    flushes: list[Any] = []
    if backend == "milvus":  # flushed once per load (issue 26: it was once per shard file)
        real_flush = loaded.client.flush
        loaded.client.flush = lambda *a, **k: flushes.append(a) or real_flush(*a, **k)
    first = load_shards(loaded, local_shards / "shard-000000.parquet").result  # a load cut short
    report = load_shards(loaded, local_shards, batch_size=40)
    if backend == "milvus":
        assert len(list(local_shards.glob("shard-*.parquet"))) > 2 and len(flushes) == 2
    assert len(first.added) + len(report.result.added) == len(loaded) == len(direct) == 196
    assert sorted(e.code for e in report.result.failures) == sorted(BAD_FILES.values())
    assert loaded.records() == direct.records()
    dup, original = (str((scale_corpus / p).resolve()) for p in DUPLICATE)
    record = next(m for m in loaded.records().values() if m["source"] in (dup, original))
    assert sorted(record["sources"]) == sorted([dup, original])
    queries = [str(scale_corpus / "img" / "p01" / f"{n:03d}.jpg") for n in (50, 52, 56)]
    assert search_results(loaded, queries) == search_results(direct, queries)
    again = load_shards(loaded, local_shards, batch_size=1000).result
    assert again.added == [] and len(again.skipped) == 196 and len(loaded) == 196


def test_load_refuses_another_models_shards(
    local_shards: Path, lite0_embeddings: Any, tmp_path: Path
) -> None:
    store = FAISSImageStore(lite0_embeddings, tmp_path / "lite0")
    with pytest.raises(ModelMismatchError, match="would mix vector spaces"):
        load_shards(store, local_shards)
    assert len(store) == 0
    with pytest.raises(StoreError, match="holds no shard-"):
        load_shards(store, tmp_path)
    # A store without a model cannot check the shards: the error names the model to open with.
    bare = FAISSImageStore(None, tmp_path / "bare")
    with pytest.raises(StoreError, match=r"no model.*open the store with ImageEmbeddings\('"):
        load_shards(bare, local_shards)
    assert len(bare) == 0


# -- the CLI -----------------------------------------------------------------------------
def test_cli_embed_dataset_and_load(
    scale_corpus: Path, scale_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, store = tmp_path / "shards", f"faiss:{tmp_path / 'index'}"
    args = ["embed-dataset", str(scale_corpus), "--out", str(out), "--model", scale_model]
    args += ["--shard-size", "100", "--device", "cpu", "--quiet", "--json"]
    assert main(args) == 1  # some inputs failed; the others are written
    summary = json.loads(capsys.readouterr().out)
    assert (summary["images"], summary["embedded"], summary["failed"]) == (201, 197, 4)
    assert (summary["shards_written"], summary["shards_skipped"]) == (3, 0)
    assert summary["images_per_second"] > 0
    assert {e["code"] for e in summary["errors"]} == set(BAD_FILES.values())
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["shards_skipped"] == 3
    assert main(["load", str(out), "--store", store, "--quiet", "--json"]) == 0
    loaded = json.loads(capsys.readouterr().out)
    assert (loaded["added"], loaded["total"], loaded["failed_in_shards"]) == (196, 196, 4)
    assert main(["load", str(out), "--store", store, "--quiet"]) == 0
    assert "added 0, already in store 196" in capsys.readouterr().out
    lite0 = f"faiss:{tmp_path / 'other'}"
    assert (
        main(["load", str(out), "--store", lite0, "--model", "timm:efficientnet_lite0", "--quiet"])
        == 5
    )
    assert "would mix vector spaces" in capsys.readouterr().err
    assert main(["embed-dataset", str(tmp_path / "nope"), "--out", str(out), "--quiet"]) == 2


# -- Ray stays optional ------------------------------------------------------------------
def test_core_cli_and_package_do_not_import_ray() -> None:
    code = (
        "import sys, langchain_image_embeddings, langchain_image_embeddings.scale; "
        "import langchain_image_embeddings.cli.dataset; "
        "from langchain_image_embeddings.cli import build_parser; build_parser(); "
        "print([m for m in ('ray', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_ray_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['ray'] = None; "
        "from langchain_image_embeddings.scale._deps import require_ray\n"
        "try:\n    require_ray()\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "langchain-image-embeddings[ray]" in out.stdout


def test_actor_pool_keeps_a_cpu_for_reads() -> None:
    from langchain_image_embeddings.scale.ray import RayOptions, size_actor_pool

    assert size_actor_pool({"CPU": 2.0}, RayOptions()) == 1
    assert size_actor_pool({"CPU": 16.0}, RayOptions(cpus_per_actor=2)) == 7
    assert size_actor_pool({"CPU": 16.0}, RayOptions(), batches=3) == 3
    assert size_actor_pool({"CPU": 64.0, "GPU": 8.0}, RayOptions(gpus_per_actor=1)) == 8
    with pytest.raises(ValueError, match="leaves no CPU for the read"):
        size_actor_pool({"CPU": 2.0}, RayOptions(cpus_per_actor=2))
    with pytest.raises(ValueError, match="at most 1"):
        size_actor_pool({"CPU": 2.0}, RayOptions(num_actors=2))
    with pytest.raises(ValueError, match="0 GPU"):
        size_actor_pool({"CPU": 8.0}, RayOptions(gpus_per_actor=1))


def test_a_second_run_into_the_same_folder_fails_at_once(
    scale_corpus: Path, scale_embeddings: Any, tmp_path: Path
) -> None:
    """Two runs writing one shard folder would delete each other's in-flight temporary files:
    while another process writes there, a run stops before touching anything."""
    from langchain_image_embeddings._atomic import TMP_SUFFIX
    from langchain_image_embeddings.errors import StoreLockedError
    from langchain_image_embeddings.scale.plan import SHARD_PREFIX, SHARD_SUFFIX

    out = tmp_path / "shards"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from langchain_image_embeddings._locks import StoreLock; "
         f"StoreLock({str(out)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        in_flight = out / f"{SHARD_PREFIX}x{SHARD_SUFFIX}.123{TMP_SUFFIX}"
        in_flight.write_bytes(b"in flight")
        plan = plan_shards(scale_corpus, shard_size=100)
        with pytest.raises(StoreLockedError, match="another embed-dataset run"):
            embed_dataset(plan, out, scale_embeddings)
        assert in_flight.exists()  # the other run's file is untouched
        assert not list(out.glob(f"*{SHARD_SUFFIX}"))
    finally:
        holder.communicate("")
    summary = embed_dataset(plan_shards(scale_corpus, shard_size=100), out, scale_embeddings)
    assert summary.shards_written == 3 and not in_flight.exists()  # left over: removed


def test_out_that_is_a_file_is_a_store_error_not_a_traceback(
    scale_corpus: Path,
    scale_model: str,
    scale_embeddings: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--out`` naming a file (or a path through one) is refused with a message, exit 5."""
    a_file = tmp_path / "shards.parquet"
    a_file.write_bytes(b"not a folder")
    plan = plan_shards(scale_corpus, shard_size=100)
    with pytest.raises(StoreError, match="is a file, not a folder"):
        embed_dataset(plan, a_file, scale_embeddings)
    with pytest.raises(StoreError, match="cannot create the shard folder"):
        embed_dataset(plan, a_file / "sub", scale_embeddings)
    args = ["embed-dataset", str(scale_corpus), "--out", str(a_file), "--model", scale_model]
    assert main([*args, "--quiet"]) == 5
    assert "is a file, not a folder" in capsys.readouterr().err
    assert a_file.read_bytes() == b"not a folder"


def test_a_shard_damaged_inside_is_a_store_error_naming_it(
    local_shards: Path, scale_embeddings: Any, tmp_path: Path
) -> None:
    """Damage past the footer (the footer still reads) surfaced as pyarrow's raw OSError;
    the shards before it are loaded and stay, and the message names the file."""
    shards = tmp_path / "shards"
    shutil.copytree(local_shards, shards)
    files = shard_files(shards)
    damaged = files[1]
    data = bytearray(damaged.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    data[4 : len(data) - 8 - footer] = b"\x55" * (len(data) - 12 - footer)
    damaged.write_bytes(bytes(data))
    assert read_shard_info(damaged).rows == 25  # the footer alone looks fine
    store = FAISSImageStore(scale_embeddings, tmp_path / "index")
    with pytest.raises(StoreError, match=f"{damaged.name} is damaged .*run embed-dataset again"):
        load_shards(store, shards)
    first_only = FAISSImageStore(scale_embeddings, tmp_path / "first")
    load_shards(first_only, files[0])
    assert set(store.records()) == set(first_only.records()) and len(store) > 0


def test_failure_rows_name_the_source_as_the_ray_reads_do(
    scale_corpus: Path, scale_embeddings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative input that cannot be read: the local engine wrote it as given, the Ray
    read tasks (``read_batch``) as an absolute path, so the engines' shards differed."""
    from langchain_image_embeddings.scale.ray import read_batch

    monkeypatch.chdir(scale_corpus)
    inputs = ["missing/none.jpg", "bad/empty.png", "img/p00/000.jpg"]
    embed_dataset(plan_shards(inputs), tmp_path / "out", scale_embeddings)
    sources = [row["source"] for row in read_rows(tmp_path / "out")]
    read = read_batch({"shard": [0] * 3, "pos": [0, 1, 2], "uri": inputs}, None)
    assert sources == [json.loads(m)["source"] for m in read["meta"]]
    assert sources == [str(scale_corpus / i) for i in inputs]


def test_a_ray_address_where_nothing_listens_fails_at_once(
    scale_corpus: Path, scale_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ray.init`` retried a wrong ``--ray-address`` for minutes (over 200 s measured)."""
    pytest.importorskip("ray.data")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    args = ["embed-dataset", str(scale_corpus), "--out", str(tmp_path / "out"), "--quiet"]
    args += ["--engine", "ray", "--ray-address", f"127.0.0.1:{port}", "--model", scale_model]
    assert main(args) == 2  # before: ray.init retried (the test hung)
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("shard-*"))


def test_joining_a_loopback_ray_keeps_127_0_0_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray turns a 127.0.0.1 address into the machine's own address (where a private Ray,
    bound to loopback, does not listen) unless its cluster flag is off; the flag is off
    during ``ray.init`` for a loopback address only, and restored afterwards."""
    pytest.importorskip("ray.data")
    import socket

    import ray
    from ray._private import ray_constants, services

    from langchain_image_embeddings.scale.ray import RayOptions
    from langchain_image_embeddings.scale.ray_session import ray_session

    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", raising=False)
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    resolved: list[str] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(
        ray,
        "init",
        lambda address, **_: resolved.append(services.resolve_ip_for_localhost("127.0.0.1")),
    )
    with socket.socket() as listener:  # something listens there, as a Ray head would
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with ray_session(RayOptions(address=f"127.0.0.1:{port}"), tmp_path):
            assert ray_constants.ENABLE_RAY_CLUSTER is False
    assert resolved == ["127.0.0.1"]
    assert ray_constants.ENABLE_RAY_CLUSTER is True
