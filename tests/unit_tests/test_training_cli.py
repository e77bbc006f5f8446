"""The ``finetune`` subcommand, mounted on a tiny argparse parser, then ``--model local:DIR``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from PIL import Image, ImageDraw  # noqa: E402

from langchain_image_embeddings import ImageEmbeddings  # noqa: E402
from langchain_image_embeddings.cli.finetune import add_finetune_parser  # noqa: E402

COLORS = {"red": (220, 30, 30), "blue": (30, 60, 220)}


# Tiny models on a shared 2-core machine run far faster on one thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imgemb")
    add_finetune_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


def _image(color: str, side: str, jitter: int) -> Image.Image:
    image = Image.new("RGB", (48, 48), "white")
    cx = (12 if side == "left" else 36) + jitter
    ImageDraw.Draw(image).ellipse((cx - 8, 16, cx + 8, 32), fill=COLORS[color])
    return image


def test_finetune_captions_then_use_local_model(
    tiny_clip_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["image,caption"]
    for i in range(4):
        for color in COLORS:
            for side in ("left", "right"):
                name = f"{color}-{side}-{i}.png"
                _image(color, side, i - 2).save(tmp_path / name)
                rows.append(f"{name},a {color} circle on the {side}")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "model"
    metrics = tmp_path / "metrics.json"
    code = _run(
        [
            "finetune", "--data", str(tmp_path / "pairs.csv"),
            "--model", f"open_clip:{tiny_clip_name}", "--pretrained", "none",
            "--mode", "full", "--epochs", "3", "--batch-size", "8", "--lr", "1e-3",
            "--no-augment", "--out", str(out), "--metrics-json", str(metrics),
            "--val-fraction", "0.25", "--quiet", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["loss"] == "infonce"  # inferred from the caption file
    assert summary["model"] == f"local:{out}"
    assert summary["train"] == 12 and summary["val"] == 4
    assert set(summary["before"]) == {"recall_at_1", "recall_at_5"}
    assert len(json.loads(metrics.read_text())["history"]) == 3
    # The saved model is usable as --model local:DIR (here through ImageEmbeddings).
    embeddings = ImageEmbeddings(f"local:{out}", device="cpu")
    vectors = embeddings.embed_images_array([str(tmp_path / "red-left-0.png")])
    query = embeddings.embed_query("a red circle on the left")
    assert vectors.shape == (1, 32) and len(query) == 32
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)


def test_finetune_class_folders_head_mode(
    tiny_clip_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for color in COLORS:
        (tmp_path / "data" / color).mkdir(parents=True)
        for i in range(5):
            _image(color, "left" if i % 2 else "right", i - 2).save(
                tmp_path / "data" / color / f"{i}.png"
            )
    out = tmp_path / "head-model"
    code = _run(
        [
            "finetune", "--data", str(tmp_path / "data"),
            "--model", f"open_clip:{tiny_clip_name}", "--pretrained", "none",
            "--mode", "head", "--embedding-dim", "16", "--epochs", "2",
            "--batch-size", "8", "--out", str(out), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "triplet" in printed and f"local:{out}" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["head"]["embedding_dim"] == 16
    assert ImageEmbeddings.from_pretrained(str(out)).dim == 16


def test_finetune_usage_and_model_errors(
    tiny_clip_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["finetune", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "neither a directory nor a file" in capsys.readouterr().err
    for label in ("a", "b"):
        (tmp_path / "classes" / label).mkdir(parents=True)
        _image("red", "left", 0).save(tmp_path / "classes" / label / "0.png")
    code = _run(
        ["finetune", "--data", str(tmp_path / "classes"), "--model", "nobackend:x",
         "--out", str(tmp_path / "o"), "--quiet"]
    )  # fmt: skip
    assert code == 3
    assert "cannot load" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["finetune", "--data", "x", "--out", "y", "--loss", "arcface"])


def _class_folders(root: Path, per_class: dict[str, int]) -> Path:
    for color, n in per_class.items():
        (root / color).mkdir(parents=True)
        for i in range(n):
            _image(color, "left" if i % 2 else "right", i - 2).save(root / color / f"{i}.png")
    return root


def test_finetune_refuses_fewer_than_two_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One class folder: a usage error before any model is loaded (it would train nothing)."""
    data = _class_folders(tmp_path / "data", {"red": 4})
    for loss in ("triplet", "infonce"):
        code = _run(
            ["finetune", "--data", str(data), "--model", "nobackend:never-loaded",
             "--loss", loss, "--out", str(tmp_path / "o"), "--quiet"]
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2, err
        assert "only one class ('red')" in err and "at least 2 classes" in err
    assert not (tmp_path / "o").exists()


def test_fit_refuses_one_class_in_the_library() -> None:
    from langchain_image_embeddings.training import LabeledImages, fit

    with pytest.raises(ValueError, match="at least 2 classes"):
        fit("timm:efficientnet_lite0", LabeledImages(["a.png", "b.png"], ["x", "x"]))


def test_finetune_says_when_recall_is_not_measurable(
    tiny_clip_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three images per class: the validation split holds one per class, so no image has a
    same-class partner there; recall@1 is reported as not measurable, not as 0.000."""
    data = _class_folders(tmp_path / "data", {"red": 3, "blue": 3})
    base = [
        "finetune", "--data", str(data), "--model", f"open_clip:{tiny_clip_name}",
        "--pretrained", "none", "--mode", "head", "--embedding-dim", "8", "--epochs", "1",
        "--batch-size", "4", "--samples-per-class", "2", "--quiet",
    ]  # fmt: skip
    metrics = tmp_path / "metrics.json"
    assert _run([*base, "--out", str(tmp_path / "m1"), "--metrics-json", str(metrics)]) == 0
    printed = capsys.readouterr().out
    assert "recall@1: not measurable: no validation image has another image of its class" in (
        printed
    )
    assert "0.000 -> 0.000" not in printed
    saved = json.loads(metrics.read_text())
    assert "no validation image" in saved["recall_not_measurable"]
    assert saved["baseline"] == {} and saved["history"][0]["recall_at_1"] is None

    assert _run([*base, "--out", str(tmp_path / "m2"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["val"] == 2
    assert summary["before"] == {"recall_at_1": None, "recall_at_5": None}
    assert summary["after"] == {"recall_at_1": None, "recall_at_5": None}
    assert "no validation image" in summary["recall_not_measurable"]


def test_finetune_model_kwargs_reach_the_encoder(
    tiny_clip_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _class_folders(tmp_path / "data", {"red": 3, "blue": 3})
    code = _run(
        ["finetune", "--data", str(data), "--model", f"open_clip:{tiny_clip_name}",
         "--model-kwargs", '{"pretrained": null, "no_such_option": 1}',
         "--out", str(tmp_path / "o"), "--quiet"]
    )  # fmt: skip
    assert code == 3 and "no_such_option" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["finetune", "--data", "d", "--out", "o", "--model-kwargs", "{oops"])
    assert info.value.code == 2
    assert "--model-kwargs" in capsys.readouterr().err


def test_every_fit_config_field_is_a_flag_with_its_default() -> None:
    """The flags are derived from FitConfig: a new field gets a flag, defaults cannot drift."""
    import dataclasses

    from langchain_image_embeddings.cli.finetune import fit_config_from_args
    from langchain_image_embeddings.training.config import FitConfig

    args = _parser().parse_args(["finetune", "--data", "d", "--out", "o", "--quiet"])
    config = fit_config_from_args(args, "triplet")
    expected = dataclasses.replace(FitConfig(), show_progress=False)
    assert config == expected
    help_text = _parser()._subparsers._group_actions[0].choices["finetune"].format_help()  # type: ignore[union-attr]
    for field in dataclasses.fields(FitConfig):
        if field.name in ("show_progress", "metrics_path"):
            continue
        assert "--" + field.name.replace("_", "-") in help_text, field.name
    # the help is the field's own docstring line, not a copy
    assert "Projection head output size" in help_text


def test_finetune_flags_reach_the_fit_config() -> None:
    from langchain_image_embeddings.cli.finetune import fit_config_from_args

    args = _parser().parse_args(
        ["finetune", "--data", "d", "--out", "o", "--grad-clip", "none", "--crop-scale", "0.3",
         "0.9", "--no-amp", "--mining", "hard", "--no-augment", "--lr", "0.01",
         "--samples-per-class", "6", "--mode", "partial"]
    )  # fmt: skip
    config = fit_config_from_args(args, "infonce")
    assert config.grad_clip is None
    assert config.crop_scale == (0.3, 0.9)
    assert (config.amp, config.augment, config.flip) == (False, False, True)
    assert (config.mining, config.lr, config.samples_per_class) == ("hard", 0.01, 6)
    assert (config.mode, config.loss) == ("partial", "infonce")
    with pytest.raises(SystemExit):
        _parser().parse_args(["finetune", "--data", "d", "--out", "o", "--mining", "easy"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["finetune", "--data", "d", "--out", "o", "--epochs", "x"])


def test_finetune_refuses_an_out_file_before_training_and_prints_a_pastable_spec(
    tiny_clip_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--out`` naming a file trained first, then died with a FileExistsError traceback; a
    relative ``--out`` with a space printed ``--model local:my model`` (unquoted, relative)."""
    import shlex

    for color in COLORS:
        (tmp_path / "data" / color).mkdir(parents=True)
        for i in range(4):
            _image(color, "left", i - 2).save(tmp_path / "data" / color / f"{i}.png")
    (tmp_path / "taken").write_text("not a folder")
    monkeypatch.chdir(tmp_path)
    base = [
        "finetune", "--data", "data", "--model", f"open_clip:{tiny_clip_name}",
        "--pretrained", "none", "--mode", "head", "--epochs", "1", "--batch-size", "4", "--samples-per-class", "2", "--quiet",
    ]  # fmt: skip
    assert _run([*base, "--out", "taken"]) == 2
    captured = capsys.readouterr()
    assert "--out taken is a file" in captured.err and captured.out == ""
    assert (tmp_path / "taken").read_text() == "not a folder"

    assert _run([*base, "--out", "my model"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    spec = f"local:{(tmp_path / 'my model').resolve()}"
    assert shlex.split(last) == ["use", "it", "with:", "--model", spec]


def test_settings_that_would_train_nothing_are_refused_before_training(
    tiny_clip_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--samples-per-class 1`` trained with loss 0.0 (no positives in a batch), an inverted
    ``--crop-scale`` was accepted, and a head over a saved head trained, then failed to save
    (exit 4)."""
    from langchain_image_embeddings.training import FitConfig

    for color in COLORS:
        (tmp_path / "data" / color).mkdir(parents=True)
        for i in range(4):
            _image(color, "right", i - 2).save(tmp_path / "data" / color / f"{i}.png")
    base = [
        "finetune", "--data", str(tmp_path / "data"), "--mode", "head", "--epochs", "1",
        "--batch-size", "4", "--samples-per-class", "2", "--embedding-dim", "8", "--quiet",
    ]  # fmt: skip
    tiny = ["--model", f"open_clip:{tiny_clip_name}", "--pretrained", "none"]
    for bad, says in (
        (["--samples-per-class", "1"], "samples_per_class must be >= 2"),
        (["--crop-scale", "0.9", "0.1"], "crop_scale must be"),
        (["--loss", "infonce", "--temperature", "0"], "temperature must be > 0"),
    ):
        assert _run([*base, *tiny, *bad, "--out", str(tmp_path / "never")]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    FitConfig(loss="infonce", samples_per_class=1)  # K only matters to the triplet loss

    assert _run([*base, *tiny, "--out", str(tmp_path / "first")]) == 0
    capsys.readouterr()
    again = [*base, "--model", f"local:{tmp_path / 'first'}", "--out", str(tmp_path / "second")]
    assert _run(again) == 2
    assert "already has a projection head" in capsys.readouterr().err
    assert not (tmp_path / "second").exists()
