"""``expected_rows`` from the command line (``imgemb index`` / ``imgemb load
--expected-rows N``) and from ``open_store(expected_rows=)``: parsed, passed to the FAISS
store, recorded, kept on reopen, and an untrainable plan refused before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from langchain_image_embeddings import cli
from langchain_image_embeddings.vectorstores import open_store, store_info
from tests.unit_tests import store_crash_writer as writer
from tests.unit_tests.test_faiss_scale import clustered


def test_expected_rows_is_parsed_for_index_and_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["index", str(tmp_path), "--expected-rows", "1e6"])
    assert args.expected_rows == 1_000_000
    args = parser.parse_args(["load", str(tmp_path), "--expected-rows", "2_000_000"])
    assert args.expected_rows == 2_000_000
    assert parser.parse_args(["load", str(tmp_path)]).expected_rows is None
    for bad in ("0", "-3", "1.5", "lots"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["load", str(tmp_path), "--expected-rows", bad])
        assert exit_info.value.code == 2
    assert "not a positive row count" in capsys.readouterr().err


def test_open_store_plans_for_expected_rows_and_keeps_it_on_reopen(tmp_path: Path) -> None:
    spec = f"faiss:{tmp_path / 's'}"
    embeddings: Any = writer.PrecomputedEmbeddings()
    with pytest.raises(ValueError, match=r"65,536 inverted lists.*1,000,000"):
        open_store(spec, embeddings, faiss_index="IVF65536,PQ16", expected_rows=1_000_000)
    assert not (tmp_path / "s").exists()  # refused before anything was written
    store: Any = open_store(spec, embeddings, faiss_index="ivf-pq", expected_rows=200_000)
    assert store.backend.expected_rows == 200_000
    ids = [f"v{i}" for i in range(5)]
    store.upsert_vectors(ids, clustered(5, seed=3), [Document(page_content=i) for i in ids])
    store.save()
    store.close()
    assert store_info(spec)["expected_rows"] == 200_000
    reopened: Any = open_store(spec, embeddings, create=False)  # None keeps the recorded plan
    assert reopened.backend.expected_rows == 200_000
    reopened.close()


def _command_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands build their model with the precomputed one, without loading any."""
    import langchain_image_embeddings.embeddings as embeddings_module

    embeddings: Any = writer.PrecomputedEmbeddings()

    class CommandModel:
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return embeddings

    monkeypatch.setattr(embeddings_module, "ImageEmbeddings", CommandModel)


def test_imgemb_index_passes_expected_rows_to_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_image_embeddings.cli.index import open_for_write

    _command_model(monkeypatch)
    spec = f"faiss:{tmp_path / 's'}"
    args = cli.build_parser().parse_args(
        [
            *("index", str(tmp_path), "--store", spec, "--faiss-index", "ivf-pq"),
            *("--expected-rows", "300000", "--model", writer.MODEL_ID),
        ]
    )
    store: Any = open_for_write(args)
    assert (store.index_kind, store.backend.expected_rows) == ("ivf-pq", 300_000)
    store.close()


def test_imgemb_load_opens_the_store_with_expected_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow")
    import hashlib

    import pyarrow.parquet as pq

    from langchain_image_embeddings.scale.plan import Shard
    from langchain_image_embeddings.scale.shards import ShardRows, shard_table
    from langchain_image_embeddings.vectorstores._records import model_record

    _command_model(monkeypatch)
    shards = tmp_path / "shards"
    shards.mkdir()
    inputs = tuple(f"img{n}.png" for n in range(20))
    metas = [{"source": s, "sha256": hashlib.sha256(s.encode()).hexdigest()} for s in inputs]
    rows = ShardRows(Shard(0, inputs, "0" * 64), metas, clustered(20, seed=4), [None] * 20)
    record = {**model_record(writer.PrecomputedEmbeddings()), "dim": writer.DIM}  # type: ignore[arg-type]
    pq.write_table(shard_table(rows, record, {}), shards / "shard-000000.parquet")
    import langchain_image_embeddings.vectorstores as vectorstores

    opened: list[dict[str, Any]] = []

    def recording_open_store(spec: str, embeddings: Any, **kwargs: Any) -> Any:
        opened.append(kwargs)
        raise KeyboardInterrupt  # stop the command here: only the store's options matter

    monkeypatch.setattr(vectorstores, "open_store", recording_open_store)
    spec = f"faiss:{tmp_path / 's'}"
    for extra, expected in ((["--expected-rows", "123456"], 123_456), ([], None)):
        with pytest.raises(KeyboardInterrupt):
            cli.main(["load", str(shards), "--store", spec, "--quiet", *extra])
        assert opened.pop() == {"create": True, "expected_rows": expected}
