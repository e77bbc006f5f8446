"""``evaluate``: metrics checked by hand, the query sources, and the errors of a query file.

Everything here runs without a model: a store is any LangChain ``VectorStore`` (langchain-core's
``InMemoryVectorStore``) and the embeddings are fixed 2-d vectors or an image's mean colour,
so every ranking, and so every metric, can be worked out by hand.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from PIL import Image

from langchain_image_embeddings.evaluation import (
    EvalSetting,
    QueryFileError,
    class_queries,
    evaluate,
    label_free_queries,
    list_corpus,
    load_queries,
    query_metrics,
    settings_grid,
)

# -- the metrics of one query, by hand -----------------------------------------------------


def test_metrics_of_a_first_hit_at_rank_two_with_two_relevant() -> None:
    # Results: miss, HIT, miss, HIT; 2 relevant items in the corpus.
    # recall@1 = 0 (no hit in the first 1), recall@5 = recall@10 = 1, MRR = 1/2.
    # DCG  = 1/log2(2+1) + 1/log2(4+1) = 0.63093 + 0.43068 = 1.06161
    # IDCG = 1/log2(1+1) + 1/log2(2+1) = 1 + 0.63093     = 1.63093
    # nDCG@10 = 1.06161 / 1.63093 = 0.65092
    m = query_metrics([False, True, False, True], n_relevant=2)
    assert m["recall@1"] == 0.0 and m["recall@5"] == 1.0 and m["recall@10"] == 1.0
    assert m["MRR"] == 0.5
    assert m["nDCG@10"] == pytest.approx(0.6509209298, abs=1e-9)


def test_metrics_of_a_hit_at_rank_seven_and_of_no_hit() -> None:
    # One relevant item at rank 7: only recall@10 counts it; MRR = 1/7;
    # nDCG = (1/log2(7+1)) / (1/log2(1+1)) = 1/3.
    m = query_metrics([False] * 6 + [True], n_relevant=1)
    assert (m["recall@1"], m["recall@5"], m["recall@10"]) == (0.0, 0.0, 1.0)
    assert m["MRR"] == pytest.approx(1 / 7)
    assert m["nDCG@10"] == pytest.approx(1 / 3)
    # A hit at rank 11 is past every cutoff: all zero.
    assert set(query_metrics([False] * 10 + [True], n_relevant=1).values()) == {0.0}


# -- labelled mode on a store given as is ----------------------------------------------------


#: Each text's fixed 2-d vector (the corpus and the queries).
VECTORS = {
    "a": [1.0, 0.0],
    "b": [0.8, 0.6],
    "c": [0.0, 1.0],
    "d": [-0.6, -0.8],
    "east": [1.0, 0.0],
    "north": [0.0, 1.0],
}


class FixedEmbeddings(Embeddings):
    """Each text has a fixed 2-d vector (:data:`VECTORS`)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [VECTORS[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return VECTORS[text]


def test_labelled_text_queries_give_the_hand_worked_values(tmp_path: Path) -> None:
    """Any LangChain store, evaluated as is through ``similarity_search_by_vector``.

    Cosine rankings: "east" (1, 0) -> a 1.0, b 0.8, c 0.0, d -0.6;
                     "north" (0, 1) -> c 1.0, b 0.6, a 0.0, d -0.8.
    Query 1 "east", relevant b:      hits . X . .  R@1 0, R@5 1, RR 1/2, nDCG 1/log2(3) = 0.63093
    Query 2 "north", relevant c, a:  hits X . X .  R@1 1, R@5 1, RR 1,
        nDCG = (1 + 1/log2(4)) / (1 + 1/log2(3)) = 1.5 / 1.63093 = 0.91972
    Query 3 "east", relevant d:      hits . . . X  R@1 0, R@5 1, RR 1/4, nDCG 1/log2(5) = 0.43068
    Means: R@1 1/3, R@5 = R@10 = 1, MRR (0.5 + 1 + 0.25) / 3 = 0.58333,
           nDCG@10 (0.63093 + 0.91972 + 0.43068) / 3 = 0.66044.
    """
    store = InMemoryVectorStore(FixedEmbeddings())
    store.add_texts(["a", "b", "c", "d"], ids=["a", "b", "c", "d"])
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        '{"text": "east", "relevant": ["b"]}\n'
        "\n"
        '{"text": "north", "relevant": ["c", "a"]}\n'
        '{"text": "east", "relevant": "d"}\n',
        encoding="utf-8",
    )
    report = evaluate(store=store, queries=queries)
    (row,) = report.rows
    assert report.mode == "queries" and row.queries == 3
    assert row.ranks == [2, 1, 4]
    assert row.metrics["recall@1"] == pytest.approx(1 / 3)
    assert row.metrics["recall@5"] == 1.0 and row.metrics["recall@10"] == 1.0
    assert row.metrics["MRR"] == pytest.approx(0.5833333333)
    assert row.metrics["nDCG@10"] == pytest.approx(0.6604423669)
    assert row.images_per_second is None  # an existing store: nothing was embedded


def test_the_same_queries_as_csv_give_the_same_values(tmp_path: Path) -> None:
    store = InMemoryVectorStore(FixedEmbeddings())
    store.add_texts(["a", "b", "c", "d"], ids=["a", "b", "c", "d"])
    queries = tmp_path / "queries.csv"
    queries.write_text("text,relevant\neast,b\nnorth,c|a\neast,d\n", encoding="utf-8")
    (row,) = evaluate(store=store, queries=queries).rows
    assert row.ranks == [2, 1, 4]
    assert row.metrics["MRR"] == pytest.approx(0.5833333333)


# -- a class folder, image queries, a store of mean colours ----------------------------------


class MeanColourEmbeddings(Embeddings):
    """An image's vector is its mean RGB (a stock ``embed_image(uris=...)`` store model)."""

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        out = []
        for uri in uris:
            with Image.open(uri) as image:
                out.append(np.asarray(image.convert("RGB"), dtype=np.float64).mean((0, 1)).tolist())
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_image(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_image([text])[0]


def _classes(root: Path) -> dict[str, tuple[int, int, int]]:
    colours = {
        "red/1.png": (250, 0, 0),
        "red/2.png": (200, 40, 40),
        "blue/1.png": (0, 0, 250),
        "blue/2.png": (40, 40, 200),
        "green/1.png": (0, 250, 0),  # alone in its class: a distractor, not a query
        "grey.png": (128, 128, 128),  # no class: a distractor
    }
    for name, colour in colours.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), colour).save(root / name)
    return colours


def test_a_class_folder_makes_every_image_query_the_others_of_its_class(tmp_path: Path) -> None:
    _classes(tmp_path)
    corpus = list_corpus(tmp_path)
    queries = class_queries(corpus)
    by_image = {Path(q.image).relative_to(tmp_path).as_posix(): q for q in queries}
    assert sorted(by_image) == ["blue/1.png", "blue/2.png", "red/1.png", "red/2.png"]
    red1 = by_image["red/1.png"]
    assert red1.relevant == {str(tmp_path / "red/2.png")}
    assert red1.exclude == {str(tmp_path / "red/1.png")}


def test_class_mode_on_a_stock_store_ranks_by_hand(tmp_path: Path) -> None:
    """Cosine of mean colours, the query itself left out of its results:
    red/1 (250,0,0): red/2 0.96, grey 0.58, ... -> its class-mate first;
    red/2 (200,40,40): red/1 0.96 first; the blues likewise. Every first result is
    relevant: recall@1 = MRR = nDCG@10 = 1 (one relevant item each)."""
    _classes(tmp_path)
    store = InMemoryVectorStore(MeanColourEmbeddings())
    paths = [str(p) for p in sorted(tmp_path.rglob("*.png"))]
    store.add_texts(paths, metadatas=[{"source": p} for p in paths])
    (row,) = evaluate(tmp_path, store=store, mode="classes").rows
    assert row.queries == 4 and row.ranks == [1, 1, 1, 1]
    assert row.metrics == {
        "recall@1": 1.0,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "MRR": 1.0,
        "nDCG@10": 1.0,
    }


def test_labelled_image_queries_resolve_paths_and_labels(tmp_path: Path) -> None:
    """An image query file: paths relative to the file, labels = class folders; a query
    image that is in the corpus is not its own answer."""
    _classes(tmp_path / "corpus")
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"image": "corpus/red/1.png", "label": "red"}\n'
        '{"image": "corpus/blue/2.png", "relevant": ["red/2.png"]}\n',
        encoding="utf-8",
    )
    store = InMemoryVectorStore(MeanColourEmbeddings())
    paths = [str(p) for p in sorted((tmp_path / "corpus").rglob("*.png"))]
    store.add_texts(paths, metadatas=[{"source": p} for p in paths])
    (row,) = evaluate(tmp_path / "corpus", store=store, queries=queries).rows
    # Query 1: red/2 is first (rank 1). Query 2 (40,40,200): blue/1 0.96, grey 0.78,
    # red/2 (200,40,40) 0.41, red/1 and green 0.19: red/2 comes third (rank 3).
    assert row.ranks[0] == 1
    assert row.ranks[1] == 3
    assert row.metrics["MRR"] == pytest.approx((1 + 1 / 3) / 2)


# -- label-free queries ----------------------------------------------------------------------


def _pictures(root: Path, n: int = 3) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"p{i}.png")


def test_label_free_queries_are_deterministic_wherever_the_folder_is(tmp_path: Path) -> None:
    _pictures(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    first = label_free_queries(list_corpus(tmp_path / "a"), copies=2, seed=7)
    again = label_free_queries(list_corpus(tmp_path / "a"), copies=2, seed=7)
    moved = label_free_queries(list_corpus(tmp_path / "elsewhere" / "b"), copies=2, seed=7)
    other = label_free_queries(list_corpus(tmp_path / "a"), copies=2, seed=8)
    assert len(first) == 6
    assert [q.image for q in first] == [q.image for q in again] == [q.image for q in moved]
    assert [q.origin for q in first] == [q.origin for q in moved]
    assert [q.image for q in first] != [q.image for q in other]
    # Each copy's one answer is its original; the copies of one image differ.
    assert [sorted(q.relevant) for q in first[:2]] == [[str(tmp_path / "a" / "p0.png")]] * 2
    assert first[0].image != first[1].image
    assert all(q.image[:2] == b"\xff\xd8" for q in first)  # re-encoded as JPEG


def test_a_label_free_sample_is_seeded(tmp_path: Path) -> None:
    _pictures(tmp_path, n=6)
    corpus = list_corpus(tmp_path)
    picked = [sorted(q.relevant) for q in label_free_queries(corpus, sample=2, copies=1, seed=3)]
    again = [sorted(q.relevant) for q in label_free_queries(corpus, sample=2, copies=1, seed=3)]
    assert picked == again and len(picked) == 2


# -- query file errors name the line and the reason ------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ('{"text": "a", "relevant": ["x.png"]}\n{"text": "b", relevant}\n', 2, "not JSON"),
        ('{"relevant": ["x.png"]}\n', 1, "exactly one of 'image' or 'text'"),
        ('{"text": "a", "image": "q.png", "relevant": "x"}\n', 1, "got both"),
        ('{"text": "a"}\n', 1, "no relevant item"),
        ('\n\n{"text": "a", "label": "cats"}\n', 3, "no corpus image has label 'cats'"),
        ('{"image": "missing.png", "relevant": ["x"]}\n', 1, "query image 'missing.png' not found"),
        ('{"text": "a", "relevant": [1]}\n', 1, "'relevant' must be a string or a list"),
        ('{"text": "a", "relevant": "x", "colour": 1}\n', 1, "unknown field(s) ['colour']"),
        ("[1, 2]\n", 1, "expected a JSON object"),
    ],
)
def test_a_bad_jsonl_query_file_names_the_line_and_the_reason(
    tmp_path: Path, content: str, line: int, reason: str
) -> None:
    _classes(tmp_path / "corpus")
    file = tmp_path / "q.jsonl"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(QueryFileError) as caught:
        load_queries(file, list_corpus(tmp_path / "corpus"))
    assert caught.value.line == line
    assert reason in str(caught.value)
    assert f"{file}, line {line}: " in str(caught.value)


def test_a_bad_csv_query_file_names_the_line_and_the_reason(tmp_path: Path) -> None:
    file = tmp_path / "q.csv"
    file.write_text("text,relevant\na,x.png\nb,\n", encoding="utf-8")
    with pytest.raises(QueryFileError, match=r"q\.csv, line 3: no relevant item"):
        load_queries(file)
    file.write_text("query,answer\na,b\n", encoding="utf-8")
    with pytest.raises(QueryFileError, match=r"line 1: CSV header .* needs a column image or text"):
        load_queries(file)
    file.with_suffix(".txt").write_text("x", encoding="utf-8")
    with pytest.raises(QueryFileError, match=r"unknown format \.txt"):
        load_queries(file.with_suffix(".txt"))


# -- settings and the report -----------------------------------------------------------------


def test_the_settings_grid_pairs_int8_with_exported_runtimes_only() -> None:
    grid = settings_grid(
        ["m:a", ("m:b", {"pretrained": None, "allow_random_weights": True})],
        runtimes=["torch", "onnx"],
        precisions=["fp32", "int8"],
        indexes=["flat", "hnsw"],
    )
    # Per model: torch/fp32, onnx/fp32, onnx/int8, each x 2 indexes = 6 rows; 2 models = 12.
    assert len(grid) == 12
    assert not any(s.runtime == "torch" and s.precision == "int8" for s in grid)
    assert grid[6].name == "m:b (random weights)"
    # flat and hnsw of one model/runtime/precision embed the corpus once.
    assert grid[0].embedding_key == grid[1].embedding_key != grid[2].embedding_key
    assert EvalSetting("m:a", {"pooling": "gem"}).name == 'm:a {"pooling":"gem"}'


def test_the_report_renders_as_markdown_json_and_a_png(tmp_path: Path) -> None:
    store = InMemoryVectorStore(FixedEmbeddings())
    store.add_texts(["a", "b", "c", "d"], ids=["a", "b", "c", "d"])
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"text": "east", "relevant": ["b"]}\n', encoding="utf-8")
    report = evaluate(store=store, queries=queries)
    table = report.to_markdown().splitlines()
    assert table[0].startswith("| # | setting | runtime | precision | index | recall@1 |")
    assert len(table) == 3 and "| 0.500 |" in table[2]  # MRR 1/2
    saved = json.loads(report.save_json(tmp_path / "r.json").read_text(encoding="utf-8"))
    assert saved["rows"][0]["metrics"]["MRR"] == 0.5 and saved["rows"][0]["ranks"] == [2]
    png = report.save_plot(tmp_path / "r.png")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width == 960
    with pytest.raises(ValueError, match="quality must be one of"):
        report.save_plot(tmp_path / "x.png", quality="accuracy")


def test_evaluate_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give a corpus"):
        evaluate()
    with pytest.raises(FileNotFoundError):
        evaluate(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no image file"):
        evaluate(tmp_path)
    _classes(tmp_path)
    with pytest.raises(ValueError, match="queries are given with"):
        evaluate(tmp_path, mode="queries")


def test_the_metric_definitions_match_their_formula() -> None:
    """nDCG@10 with every one of 12 relevant items ranked first is 1 (the ideal DCG reads
    10 ranks, not 12)."""
    assert query_metrics([True] * 10, n_relevant=12)["nDCG@10"] == pytest.approx(1.0)
    ideal = sum(1 / math.log2(r + 1) for r in range(1, 4))
    assert query_metrics([True, True, False, True], n_relevant=3)["nDCG@10"] == pytest.approx(
        (1 + 1 / math.log2(3) + 1 / math.log2(5)) / ideal
    )
