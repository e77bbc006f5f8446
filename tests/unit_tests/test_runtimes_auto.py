"""``runtime="auto"``: torch for small workloads, a measured choice for big ones, remembered
per model and machine, and torch (with a warning, never an error) when nothing else can run.

The exported runtimes are replaced by in-process doubles in most tests (an ONNX export takes
tens of seconds on a busy 2-core machine; ``test_runtimes.py`` tests the real ones, and the
one test here marked ``slow`` lets the real ones compete): "onnx" answers with torch's own
vectors at once after its first call, "openvino" 60 ms later, and torch is slowed by 30 ms a
batch, so "onnx" wins every measurement. What is under test is the decision, its storage and its reuse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from langchain_image_embeddings import ImageEmbeddings, create_encoder
from langchain_image_embeddings.encoders import runtimes
from langchain_image_embeddings.encoders.runtimes import (
    AutoRuntime,
    auto,
    check_runtime,
    choice,
    export,
    exported,
    with_runtime,
)
from langchain_image_embeddings.encoders.runtimes.auto import RuntimeFallbackWarning
from langchain_image_embeddings.encoders.runtimes.cache import MANIFEST
from langchain_image_embeddings.errors import EncoderError

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("runtime_auto_worker.py")
TINY = {"pretrained": None, "allow_random_weights": True}


class Double:
    """An exported runtime's stand-in: torch's vectors, "onnx" fast, "openvino" slow."""

    delay: ClassVar[dict[str, float]] = {"onnx": 0.0, "openvino": 0.06}
    builds: ClassVar[list[str]] = []

    def __init__(self, encoder: Any, runtime: str, **_: Any) -> None:
        self.encoder, self.name = encoder, runtime
        self._seen: dict[tuple[int, ...], torch.Tensor] = {}
        Double.builds.append(runtime)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay[self.name])
        key = (pixels.data_ptr(), *pixels.shape)
        if key not in self._seen:
            with torch.no_grad():
                self._seen[key] = self.encoder.forward_images(pixels)
        return self._seen[key]


@pytest.fixture
def doubles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Exported runtimes replaced by :class:`Double`, eager torch slowed by 30 ms a batch
    (so "onnx" wins by a mile however loaded the machine); returns the measurements."""
    Double.builds = []
    measured: list[int] = []
    real = choice.measure_runtimes
    real_torch = choice.torch_forward

    def slow_torch(encoder: Any, pixels: torch.Tensor) -> torch.Tensor:
        time.sleep(0.03)
        return real_torch(encoder, pixels)

    def counting(*args: Any, **kwargs: Any) -> Any:
        measured.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(runtimes, "ExportedRuntime", Double)  # what with_runtime builds
    monkeypatch.setattr(exported, "ExportedRuntime", Double)  # what auto measures
    monkeypatch.setattr(choice, "measure_runtimes", counting)
    monkeypatch.setattr(choice, "torch_forward", slow_torch)
    return measured


@pytest.fixture
def encoder(fresh_tiny_clip: Any, one_torch_thread: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh tiny CLIP (32x32 inputs), one torch thread, and the parameter floor lifted so
    that this tiny model may be measured."""
    monkeypatch.setattr(auto, "MIN_PARAMETERS", 0)
    fresh_tiny_clip.load()
    return fresh_tiny_clip


def _pixels(encoder: Any, rows: int = 4, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    height, width = encoder.preprocess_config.input_size
    return torch.randn(rows, 3, height, width)


def _images(n: int) -> list[np.ndarray]:
    return [np.full((48, 40, 3), 20 * i % 255, dtype=np.uint8) for i in range(n)]


def test_default_is_auto_and_small_workloads_stay_on_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None, tiny_clip_name: str
) -> None:
    """The rule: nothing is measured before 256 images and 10 s of model time, so a few
    images never pay for an export (and a model this small never measures at all)."""
    monkeypatch.setenv("IMGEMB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("IMGEMB_AUTO_RUNTIME_AFTER_S", raising=False)

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a small workload must not be measured")

    monkeypatch.setattr(choice, "choose_runtime", never)
    exports = export.EXPORTS["count"]
    spec = f"open_clip:{tiny_clip_name}"
    embeddings = ImageEmbeddings(spec, model_kwargs=TINY, device="cpu", batch_size=4)
    assert embeddings.runtime == "auto"
    torch_only = ImageEmbeddings(embeddings.encoder, device="cpu", runtime="torch")
    vectors = embeddings.embed_images_array(_images(10))
    assert np.abs(vectors - torch_only.embed_images_array(_images(10))).max() < 1e-6
    report = embeddings.runtime_report()
    assert (report.setting, report.active, report.measurement) == ("auto", "torch", None)
    assert report.measure_after_s == 10.0 and report.model_seconds > 0
    assert "torch until 256 images and 10 s of model time" in report.reason
    assert "(20 images" in report.reason  # both objects count on the same encoder
    assert embeddings.encoder.runtime == "torch"
    assert export.EXPORTS["count"] == exports and not any(tmp_path.iterdir())
    # Below the parameter floor the model never measures, even when told to at once.
    tiny = with_runtime(embeddings.encoder, "auto", after_s=0)
    tiny.encode_images(torch.randn(2, 3, 32, 32))
    assert tiny.runtime == "torch" and tiny._runtime.decided
    assert "parameters, below the 2,000,000" in tiny._runtime.report().reason


def test_the_choice_is_measured_once_then_remembered(
    encoder: Any, tmp_path: Path, doubles: list[int]
) -> None:
    pixels = _pixels(encoder)
    first = with_runtime(encoder, "auto", cache_dir=tmp_path, after_s=0)
    features = first.encode_images(pixels)
    auto = first._runtime
    assert isinstance(auto, AutoRuntime) and auto.decided
    assert first.runtime == "onnx" and encoder.runtime == "torch"
    measurement = auto.measurement
    assert measurement is not None and measurement.source == "measured"
    assert measurement.chosen == "onnx" and set(measurement.images_per_second) == {
        "torch",
        "onnx",
        "openvino",
    }
    assert measurement.min_cosine["onnx"] >= 0.9999
    assert torch.allclose(features, encoder.encode_images(pixels), atol=1e-6)
    assert doubles == [1] and sorted(Double.builds) == ["onnx", "openvino"]
    stored = json.loads((Path(measurement.entry or "") / choice.CHOICE_FILE).read_text())
    assert stored["chosen"] == "onnx" and stored["batch_shape"] == list(pixels.shape)
    # A second object (a later process, the same machine): the choice is read, not measured,
    # and only the winner is opened.
    Double.builds = []
    again = with_runtime(encoder, "auto", cache_dir=tmp_path, after_s=0)
    again.encode_images(pixels)
    report = again._runtime.report()
    assert report.active == "onnx" and report.measurement is not None
    assert report.measurement.source == "remembered" and "remembered" in report.reason
    assert doubles == [1] and Double.builds == ["onnx"]


def test_decides_on_a_full_batch_after_enough_images_and_model_time(
    encoder: Any, tmp_path: Path, doubles: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auto, "MIN_IMAGES", 10)
    auto_encoder = with_runtime(encoder, "auto", cache_dir=tmp_path, after_s=1e-9)
    runtime = auto_encoder._runtime
    for _ in range(2):
        auto_encoder.encode_images(_pixels(encoder))
    assert not runtime.decided and runtime.images == 8 and doubles == []  # < 10 images
    auto_encoder.encode_images(_pixels(encoder, rows=2))  # a stream's short last batch
    assert not runtime.decided and runtime.images == 10 and doubles == []
    runtime.after_s = 1e9  # enough images, not enough model time
    auto_encoder.encode_images(_pixels(encoder))
    assert not runtime.decided and doubles == []
    runtime.after_s = 1e-9
    auto_encoder.encode_images(_pixels(encoder))
    assert runtime.decided and runtime.measurement is not None and doubles == [1]
    assert runtime.measurement.batch_shape[0] == 4


def test_each_machine_and_thread_count_has_its_own_choice(
    encoder: Any, tmp_path: Path, doubles: list[int]
) -> None:
    """A choice is keyed by the CPU and the threads (and versions): another count measures."""
    pixels = _pixels(encoder)
    for threads in (1, 2, 1):
        auto = AutoRuntime(encoder, cache_dir=tmp_path, threads=threads, after_s=0)
        auto.encode_images(pixels)
        assert auto.measurement is not None
    assert doubles == [1, 1]  # 1 thread measured, 2 threads measured, 1 thread remembered
    key_1 = choice.choice_key(encoder, tuple(pixels.shape), 1)
    key_2 = choice.choice_key(encoder, tuple(pixels.shape), 2)
    assert key_1["cpu"]["threads"] == 1 and key_1["cpu"]["model"] and key_1["cpu"]["flags"]
    assert key_1["versions"]["onnxruntime"] == export.version_of("onnxruntime") != "absent"
    assert {k: v for k, v in key_1.items() if k != "cpu"} == {
        k: v for k, v in key_2.items() if k != "cpu"
    }


@pytest.mark.parametrize("damage", ["garble", "no-manifest", "old-format", "unknown-runtime"])
def test_a_corrupt_or_stale_choice_is_measured_again(
    encoder: Any, tmp_path: Path, doubles: list[int], damage: str
) -> None:
    pixels = _pixels(encoder)
    first = choice.choose_runtime(encoder, pixels, cache_dir=tmp_path)
    entry = Path(first.entry or "")
    path = entry / choice.CHOICE_FILE
    if damage == "garble":
        path.write_text(path.read_text().replace('"onnx"', '"onxx"', 1))
    elif damage == "no-manifest":
        (entry / MANIFEST).unlink()
    else:
        # Intact checksums, unusable content: a choice stored by an older version, or
        # naming a runtime this version does not know.
        data = json.loads(path.read_text())
        if damage == "old-format":
            data["format"] = 0
        else:
            data["chosen"] = "tensorrt"
            data["images_per_second"]["tensorrt"] = 1e6
        path.write_text(json.dumps(data))
        manifest = json.loads((entry / MANIFEST).read_text())
        from langchain_image_embeddings._atomic import sha256_file

        manifest["files"][choice.CHOICE_FILE] = {
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        (entry / MANIFEST).write_text(json.dumps(manifest))
    assert choice.remembered_choice(encoder, tuple(pixels.shape), cache_dir=tmp_path) is None
    again = choice.choose_runtime(encoder, pixels, cache_dir=tmp_path)
    assert again.source == "measured" and again.chosen == "onnx" and doubles == [1, 1]
    assert again.entry == first.entry  # rebuilt in place
    remembered = choice.remembered_choice(encoder, tuple(pixels.shape), cache_dir=tmp_path)
    assert remembered is not None and remembered.chosen == "onnx"


@pytest.mark.parametrize("missing", ["both", "onnxruntime"])
def test_a_missing_extra_falls_back_to_torch_with_a_warning(
    encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # "import onnxruntime" fails
    if missing == "both":
        monkeypatch.setitem(sys.modules, "openvino", None)
    if missing == "onnxruntime":

        class Installed(Double):  # a double that needs its runtime, as the real one does
            def __init__(self, encoder: Any, runtime: str, **kwargs: Any) -> None:
                if runtime == "onnx":
                    from langchain_image_embeddings.encoders.runtimes import onnx

                    onnx.require_onnxruntime()
                super().__init__(encoder, runtime, **kwargs)

        monkeypatch.setattr(exported, "ExportedRuntime", Installed)
    pixels = _pixels(encoder)
    auto_encoder = with_runtime(encoder, "auto", cache_dir=tmp_path, after_s=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = auto_encoder.encode_images(pixels)
    assert torch.allclose(features, encoder.encode_images(pixels), atol=1e-6)
    report = auto_encoder._runtime.report()
    if missing == "both":
        assert report.active == "torch" and "neither ONNX Runtime nor OpenVINO" in report.reason
        messages = [str(w.message) for w in caught if w.category is RuntimeFallbackWarning]
        assert len(messages) == 1 and "[onnx]" in messages[0] and "running torch" in messages[0]
        assert not any(tmp_path.iterdir())  # nothing exported, nothing stored
    else:
        # One extra missing is not a failure: the other one is measured (no warning).
        assert report.measurement is not None
        assert report.measurement.rejected["onnx"].startswith("not installed")
        assert "openvino" in report.measurement.images_per_second
        assert not [w for w in caught if w.category is RuntimeFallbackWarning]


def test_a_failed_export_falls_back_to_torch_with_a_warning(
    encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[str] = []

    def broken_export(spec: Any, folder: Path) -> Path:
        attempts.append(spec.tower)
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(export, "export_onnx", broken_export)
    pixels = _pixels(encoder)
    embeddings = ImageEmbeddings(
        with_runtime(encoder, "auto", cache_dir=tmp_path, after_s=0), device="cpu", batch_size=4
    )
    with pytest.warns(RuntimeFallbackWarning, match="aten::frobnicate") as caught:
        vectors = embeddings.embed_images_array(_images(4))
    assert "choosing among the rest (torch)" in str(caught[0].message)
    reference = ImageEmbeddings(encoder, device="cpu", runtime="torch", batch_size=4)
    assert np.abs(vectors - reference.embed_images_array(_images(4))).max() < 1e-6
    report = embeddings.runtime_report()
    assert report.active == "torch" and report.measurement is not None
    assert set(report.measurement.rejected) == {"onnx", "openvino"}
    assert attempts  # it was tried ...
    # ... and the failure is remembered: a later process runs torch without trying again.
    attempts.clear()
    again = with_runtime(encoder, "auto", cache_dir=tmp_path, after_s=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again.encode_images(pixels)
    assert again.runtime == "torch" and attempts == []
    assert again._runtime.measurement.source == "remembered"


def test_an_unwritable_cache_falls_back_to_torch_with_a_warning(
    encoder: Any, tmp_path: Path, doubles: list[int]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    auto_encoder = with_runtime(encoder, "auto", cache_dir=blocker / "cache", after_s=0)
    with pytest.warns(RuntimeFallbackWarning, match="cannot create the export cache folder"):
        auto_encoder.encode_images(_pixels(encoder))
    assert auto_encoder.runtime == "torch" and auto_encoder._runtime.decided


def test_an_explicit_runtime_is_never_overridden(
    encoder: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    doubles: list[int],
    tiny_clip_name: str,
) -> None:
    tiny = f"open_clip:{tiny_clip_name}"
    monkeypatch.setenv("IMGEMB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("IMGEMB_AUTO_RUNTIME_AFTER_S", "0")
    spec = ImageEmbeddings(tiny, model_kwargs=TINY, runtime="torch", device="cpu")
    assert spec.runtime == "torch"
    spec.embed_images_array(_images(8))
    assert spec.encoder.runtime == "torch" and spec.encoder._runtime is None
    assert spec.runtime_report().reason == "runtime='torch' was asked for"
    for runtime in ("onnx", "openvino"):
        named = ImageEmbeddings(tiny, model_kwargs=TINY, runtime=runtime)
        assert named.encoder._runtime.name == runtime  # the double, not an AutoRuntime
        assert named.runtime_report().active == runtime
    # An encoder object runs as given, whatever runtime="auto" would choose.
    given = ImageEmbeddings(encoder, device="cpu")
    given.embed_images_array(_images(8))
    assert given.encoder is encoder and encoder.runtime == "torch"
    assert "runs as given" in given.runtime_report().reason
    # A GPU (or half precision) runs torch with autocast: never measured.
    half = ImageEmbeddings(tiny, model_kwargs=TINY, device="cpu", precision="bf16")
    half.embed_images_array(_images(2))
    assert half.runtime_report().active == "torch" and "bf16" in half.runtime_report().reason
    assert doubles == []
    # int8 changes the vectors: never chosen for you, and refused with "auto".
    with pytest.raises(EncoderError, match="never chooses it"):
        check_runtime("auto", "int8", "cpu")
    with pytest.raises((EncoderError, ValueError), match="never chooses it"):
        ImageEmbeddings(tiny, precision="int8")


def test_weights_that_change_after_the_switch_go_back_to_torch(
    encoder: Any, tmp_path: Path, doubles: list[int]
) -> None:
    """The exported copy holds the old weights: a fine-tune of the shared module retires it."""
    auto_encoder = with_runtime(encoder, "auto", cache_dir=tmp_path, after_s=0)
    pixels = _pixels(encoder)
    auto_encoder.encode_images(pixels)
    assert auto_encoder.runtime == "onnx"
    auto_encoder.encode_images(pixels)  # inference does not count as a change
    assert auto_encoder.runtime == "onnx"
    with torch.no_grad():
        next(encoder.module.parameters()).add_(0.5)
    features = auto_encoder.encode_images(pixels)
    assert auto_encoder.runtime == "torch" and "weights changed" in (
        auto_encoder._runtime.report().reason
    )
    assert torch.allclose(features, encoder.encode_images(pixels), atol=1e-6)


def test_pickled_auto_runtime_keeps_its_state(
    encoder: Any, tmp_path: Path, doubles: list[int]
) -> None:
    import pickle

    auto_encoder = with_runtime(encoder, "auto", cache_dir=tmp_path, after_s=1e9)
    auto_encoder.encode_images(_pixels(encoder))
    clone = pickle.loads(pickle.dumps(auto_encoder))
    assert clone._runtime.images == 4 and not clone._runtime.decided
    assert torch.allclose(
        clone.encode_images(_pixels(encoder)), encoder.encode_images(_pixels(encoder)), atol=1e-6
    )


def test_bench_and_info_show_the_choice(
    encoder: Any,
    tiny_clip_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    doubles: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from langchain_image_embeddings.cli import main

    monkeypatch.setenv("IMGEMB_CACHE_DIR", str(tmp_path / "cache"))
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(_images(3)[i]).save(photos / f"p{i}.png")
    spec = f"open_clip:{tiny_clip_name}"
    args = ["bench", spec, "--model-kwargs", json.dumps(TINY), "--images", str(photos)]
    assert main([*args, "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "<- chosen" in out and "onnx" in out and "openvino" in out and "torch" in out
    assert 'runtime="auto" runs onnx' in out
    assert main([*args, "--batch-size", "4", "--json"]) == 0  # measures again on demand
    data = json.loads(capsys.readouterr().out)
    assert data["chosen"] == "onnx" and data["batch_shape"][0] == 4
    assert doubles == [1, 1]
    # --cached prints the stored choice without measuring.
    assert main([*args, "--batch-size", "4", "--cached", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "remembered" and doubles == [1, 1]


def test_info_runtimes_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_clip_name: str
) -> None:
    from langchain_image_embeddings.cli import query

    monkeypatch.setenv("IMGEMB_CACHE_DIR", str(tmp_path))
    line = query._runtime_line(
        {"chosen": "onnx", "images_per_second": {"torch": 50.0, "onnx": 75.5},
         "batch_shape": [32, 3, 224, 224]}
    )  # fmt: skip
    assert line == "auto -> onnx (onnx 75.5, torch 50.0 img/s model-only on 32x3x224x224)"
    from langchain_image_embeddings.cli.bench import remembered_runtime

    monkeypatch.setattr(
        "langchain_image_embeddings.encoders.create_encoder",
        lambda spec, **kw: create_encoder(spec, **{**kw, **TINY}),
    )
    spec = f"open_clip:{tiny_clip_name}"
    unknown = remembered_runtime(spec)
    assert unknown["chosen"] is None and f"imgemb bench {spec}" in unknown["note"]
    assert query._runtime_line(unknown).startswith("auto: not measured on this machine yet")


@pytest.mark.slow
def test_the_choice_is_reused_across_processes(tmp_path: Path) -> None:
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "auto-tiny-clip.json").write_text((ROOT / "tests" / "tiny_clip.json").read_text())

    def start(threads: int) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, str(WORKER), str(tmp_path / "cache"), str(config_dir)]
        return subprocess.Popen(
            [*command, str(threads)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def result(process: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-2000:]
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]

    first = result(start(1))
    second_process, other_process = start(1), start(2)  # after the first one, side by side
    second, other = result(second_process), result(other_process)
    assert first["source"] == "measured" and first["measured"] == 1
    assert sorted(first["builds"]) == ["onnx", "openvino"] and first["active"] == "onnx"
    # The next process on this machine reads the choice: no measuring, only the winner built.
    assert second["source"] == "remembered" and second["measured"] == 0
    assert second["builds"] == ["onnx"] and second["active"] == "onnx"
    assert second["entry"] == first["entry"] and second["pid"] != first["pid"]
    assert not first["warnings"] and not second["warnings"]
    # Another thread count is another machine as far as speed goes: measured again.
    assert other["source"] == "measured" and other["entry"] != first["entry"]


@pytest.mark.slow
def test_real_runtimes_compete_and_the_default_keeps_torchs_vectors(
    tiny_clip_encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real ONNX Runtime and OpenVINO sessions (one export): whichever wins, only a runtime
    with torch's vectors is chosen, and the vectors auto returns are torch's."""
    monkeypatch.setattr(auto, "MIN_PARAMETERS", 0)  # the tiny CLIP may be measured
    auto_encoder = with_runtime(tiny_clip_encoder, "auto", cache_dir=tmp_path, after_s=0)
    torch.manual_seed(3)
    pixels = torch.randn(6, 3, 32, 32)
    auto_encoder.encode_images(pixels)
    measurement = auto_encoder._runtime.measurement
    assert measurement is not None and not measurement.rejected, measurement
    assert min(measurement.min_cosine.values()) >= 0.9999
    assert auto_encoder.runtime == measurement.chosen
    cos = torch.nn.functional.cosine_similarity(
        auto_encoder.encode_images(pixels), tiny_clip_encoder.encode_images(pixels)
    )
    assert float(cos.min()) >= 0.9999
