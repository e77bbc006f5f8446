"""CPU runtimes (ONNX Runtime, OpenVINO): export once, cache safely, match torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from langchain_image_embeddings import ImageEmbeddings, create_encoder
from langchain_image_embeddings._atomic import sha256_file
from langchain_image_embeddings.encoders.runtimes import check_runtime, with_runtime
from langchain_image_embeddings.encoders.runtimes.cache import MANIFEST
from langchain_image_embeddings.errors import EncoderError, MissingDependencyError

RUNTIMES = ["onnx", "openvino"]
WORKER = Path(__file__).with_name("runtime_export_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for the module: each model is exported once, then loaded."""
    return tmp_path_factory.mktemp("runtime-cache")


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randn(5, 3, 32, 32)


TEXTS = ["a cat", "a much longer caption about a small dog on a red sofa", "x"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tiny_clip_both_towers_match_torch(
    tiny_clip_encoder: Any, cache_dir: Path, pixels: torch.Tensor, runtime: str
) -> None:
    encoder = with_runtime(tiny_clip_encoder, runtime, cache_dir=cache_dir)
    assert encoder.runtime == runtime and tiny_clip_encoder.runtime == "torch"
    images = encoder.encode_images(pixels)
    texts = encoder.encode_texts(TEXTS)
    assert cosines(images, tiny_clip_encoder.encode_images(pixels)).min() >= 0.9999
    # Texts of different lengths: the exported tower trims padding like the torch path.
    assert cosines(texts, tiny_clip_encoder.encode_texts(TEXTS)).min() >= 0.9999
    assert set(encoder._runtime.entries) == {"image", "text"}
    # The store fingerprint names the space, not the runtime: stores stay searchable.
    assert encoder.fingerprint() == tiny_clip_encoder.fingerprint()


def test_each_encoder_exports_its_own_text_tower(fresh_tiny_clip: Any) -> None:
    """The runtimes export through the encoder interface: a CLIP model describes its text
    tower (padding trimmed, so the sequence axis is dynamic), an image-only model has none."""
    tower = fresh_tiny_clip.export_text_tower()
    assert tower is not None and tower.trim
    assert tower.export.tower == "text" and tower.export.dynamic == ("batch", "sequence")
    with torch.inference_mode():
        exported = tower.export.module(tower.tokenize(TEXTS))
    assert cosines(exported, fresh_tiny_clip.encode_texts(TEXTS)).min() >= 0.9999
    image = fresh_tiny_clip.export_image_tower()
    assert image.tower == "image" and image.dynamic == ("batch",)
    assert create_encoder("timm:efficientnet_lite0").export_text_tower() is None


def test_fine_tuned_text_head_runs_in_the_runtime(
    fresh_tiny_clip: Any, cache_dir: Path, pixels: torch.Tensor
) -> None:
    """A fine-tuned CLIP exports its base's text tower with its own text head on top."""
    from langchain_image_embeddings.encoders.local import FineTunedEncoder
    from langchain_image_embeddings.encoders.pooling import ProjectionHead

    torch.manual_seed(5)
    dim = fresh_tiny_clip.dim
    tuned = FineTunedEncoder(
        fresh_tiny_clip, head=ProjectionHead(dim, 8), text_head=ProjectionHead(dim, 8)
    )
    encoder = with_runtime(tuned, "onnx", cache_dir=cache_dir)
    texts = encoder.encode_texts(TEXTS)
    assert texts.shape == (len(TEXTS), 8)
    assert cosines(texts, tuned.encode_texts(TEXTS)).min() >= 0.9999
    assert cosines(encoder.encode_images(pixels), tuned.encode_images(pixels)).min() >= 0.9999
    assert set(encoder._runtime.entries) == {"image", "text"}
    image_only = FineTunedEncoder(fresh_tiny_clip, head=ProjectionHead(dim, 8))
    assert not image_only.has_text and image_only.export_text_tower() is None


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_int8_is_quantised_and_close_to_fp32(
    tiny_clip_encoder: Any, cache_dir: Path, pixels: torch.Tensor, runtime: str
) -> None:
    encoder = with_runtime(tiny_clip_encoder, runtime, precision="int8", cache_dir=cache_dir)
    images = encoder.encode_images(pixels)
    texts = encoder.encode_texts(TEXTS)
    assert cosines(images, tiny_clip_encoder.encode_images(pixels)).min() >= 0.99
    assert cosines(texts, tiny_clip_encoder.encode_texts(TEXTS)).min() >= 0.99
    entry = encoder._runtime.entries["image-int8"]
    if runtime == "onnx":
        import onnx

        ops = {node.op_type for node in onnx.load(str(entry.path / "model.onnx")).graph.node}
        assert "MatMulInteger" in ops and "ConvInteger" not in ops
    else:
        assert 'element_type="i8"' in (entry.path / "model.xml").read_text()


def test_int8_weights_have_seven_bits_where_eight_would_saturate(
    tiny_clip_encoder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On x86 without VNNI, ORT's u8s8 kernels saturate with 8-bit weights: the tiny CLIP's
    text vectors fell to cosine 0.983 on such a CPU. 7-bit weights are chosen there, cached
    apart from 8-bit ones, and keep int8 close to fp32 whatever the CPU running the test."""
    from langchain_image_embeddings.encoders.runtimes import onnx as ort_runtime

    assert ort_runtime.int8_saturates(frozenset({"avx2", "fma"}))
    assert ort_runtime.int8_saturates(frozenset({"avx512f", "avx512bw"}))
    assert not ort_runtime.int8_saturates(frozenset({"avx512f", "avx512_vnni"}))
    assert not ort_runtime.int8_saturates(frozenset({"avx2", "avx_vnni"}))

    seen: list[bool] = []
    real_quantize = ort_runtime.quantize_int8

    def recording(source: Path, folder: Path, *, reduce_range: bool = False) -> None:
        seen.append(reduce_range)
        real_quantize(source, folder, reduce_range=reduce_range)

    monkeypatch.setattr(ort_runtime, "quantize_int8", recording)
    entries = []
    for saturates in (True, False):
        monkeypatch.setattr(ort_runtime, "int8_saturates", lambda saturates=saturates: saturates)
        encoder = with_runtime(tiny_clip_encoder, "onnx", precision="int8", cache_dir=tmp_path)
        texts = encoder.encode_texts(TEXTS)
        entries.append(encoder._runtime.entries["text-int8"].path)
        if saturates:
            assert cosines(texts, tiny_clip_encoder.encode_texts(TEXTS)).min() >= 0.999
    assert True in seen and False in seen  # each setting quantised its own copy
    assert entries[0] != entries[1]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("spec", ["timm:test_vit", "torchvision:resnet18"])
def test_timm_and_torchvision_match_torch(cache_dir: Path, runtime: str, spec: str) -> None:
    torch.manual_seed(0)
    encoder = create_encoder(spec, pretrained=None, allow_random_weights=True)
    encoder.load()
    height, width = encoder.preprocess_config.input_size
    batch = torch.randn(3, 3, height, width)
    exported = with_runtime(encoder, runtime, cache_dir=cache_dir)
    assert cosines(exported.encode_images(batch), encoder.encode_images(batch)).min() >= 0.9999
    # The batch axis is dynamic: another batch size runs on the same export.
    assert exported.encode_images(batch[:1]).shape == (1, encoder.dim)


def test_random_inits_do_not_share_an_entry(cache_dir: Path) -> None:
    entries, outputs = [], []
    batch = torch.randn(2, 3, 160, 160)
    for seed in (0, 1):  # same spec, same fingerprint ("weights": "None"), other weights
        torch.manual_seed(seed)
        encoder = create_encoder("timm:test_vit", pretrained=None, allow_random_weights=True)
        exported = with_runtime(encoder, "onnx", cache_dir=cache_dir)
        outputs.append(exported.encode_images(batch))
        assert cosines(outputs[-1], encoder.encode_images(batch)).min() >= 0.9999
        entries.append(exported._runtime.entries["image"].path)
    assert entries[0] != entries[1]
    assert cosines(outputs[0], outputs[1]).max() < 0.99


def _worker(cache: Path, config_dir: Path, slow: float = 0.0) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(WORKER), str(cache), str(config_dir), str(slow)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=240)
    assert process.returncode == 0
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_two_processes_at_once_export_once(tiny_clip_name: str, tmp_path: Path) -> None:
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / f"{tiny_clip_name}.json").write_text(
        (ROOT / "tests" / "tiny_clip.json").read_text()
    )
    cache = tmp_path / "cache"
    # Two processes at once; the export sleeps 1.5 s so they surely overlap inside it.
    first, second = _worker(cache, config_dir, 1.5), _worker(cache, config_dir, 1.5)
    results = [_result(first), _result(second)]
    assert sorted(r["built"] for r in results) == [False, True]
    assert sorted(r["exports"] for r in results) == [0, 1]
    builder = next(r for r in results if r["built"])
    loader = next(r for r in results if not r["built"])
    # The loader waited for the builder's entry and used it: no export of its own, and the
    # manifest it verified is the one the builder process wrote.
    assert loader["manifest_pid"] == builder["pid"] != loader["pid"]
    entry = Path(builder["entry"])
    # Exactly one entry and no temporary folders left behind.
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == [entry.name]
    assert (entry / "model.onnx").is_file()
    assert np.allclose(loader["features"], builder["features"], atol=1e-5)


@pytest.fixture(scope="module")
def built_cache(
    tiny_clip_encoder: Any, tmp_path_factory: pytest.TempPathFactory, pixels: torch.Tensor
) -> tuple[Path, torch.Tensor]:
    """A cache holding the tiny CLIP's image tower, and its features on ``pixels``."""
    root = tmp_path_factory.mktemp("built-cache")
    features = with_runtime(tiny_clip_encoder, "onnx", cache_dir=root).encode_images(pixels)
    return root, features


@pytest.mark.parametrize("damage", ["truncate", "garble", "no-manifest"])
def test_corrupt_entry_is_rebuilt_not_loaded(
    tiny_clip_encoder: Any,
    built_cache: tuple[Path, torch.Tensor],
    tmp_path: Path,
    pixels: torch.Tensor,
    damage: str,
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(built_cache[0], cache)
    (entry,) = [p for p in cache.iterdir() if not p.name.endswith(".lock")]
    model_file = entry / "model.onnx"
    data = model_file.read_bytes()
    if damage == "truncate":
        model_file.write_bytes(data[: len(data) // 2])
    elif damage == "garble":
        mid = len(data) // 2
        model_file.write_bytes(
            data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :]
        )
    else:
        (entry / MANIFEST).unlink()
    again = with_runtime(tiny_clip_encoder, "onnx", cache_dir=cache)
    features = again.encode_images(pixels)
    rebuilt = again._runtime.entries["image"]
    assert rebuilt.built is True and rebuilt.path == entry
    # The damaged file was replaced by a fresh export that matches the new manifest.
    recorded = rebuilt.manifest["files"]["model.onnx"]
    assert sha256_file(model_file) == recorded["sha256"] and recorded["size"] > len(data) // 2
    assert cosines(features, built_cache[1]).min() >= 0.9999


def test_image_embeddings_runtime_end_to_end(
    tiny_clip_encoder: Any, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    monkeypatch.setenv("IMGEMB_CACHE_DIR", str(cache_dir))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(3)]
    torch_emb = ImageEmbeddings(tiny_clip_encoder, device="cpu")
    onnx_emb = ImageEmbeddings(tiny_clip_encoder, device="cpu", runtime="onnx")
    assert onnx_emb.encoder.runtime == "onnx" and tiny_clip_encoder.runtime == "torch"
    a, b = torch_emb.embed_images_array(images), onnx_emb.embed_images_array(images)
    assert float((a * b).sum(axis=1).min()) >= 0.9999
    assert np.dot(onnx_emb.embed_query("a cat"), torch_emb.embed_query("a cat")) >= 0.9999
    # model_kwargs may carry runtime / precision (the CLI's --runtime / --precision).
    lifted = ImageEmbeddings(
        "timm:test_vit", model_kwargs={"runtime": "openvino", "precision": "int8"}
    )
    assert (lifted.runtime, lifted.precision, lifted.model_kwargs) == ("openvino", "int8", {})


def test_cli_runtime_options_reach_the_embeddings() -> None:
    from langchain_image_embeddings.cli import build_parser
    from langchain_image_embeddings.cli.common import model_kwargs

    args = build_parser().parse_args(
        ["embed", "photos", "--runtime", "onnx", "--precision", "int8"]
    )
    embeddings = ImageEmbeddings(args.model, model_kwargs=model_kwargs(args), device="cpu")
    assert (embeddings.runtime, embeddings.precision) == ("onnx", "int8")


@pytest.mark.parametrize(
    ("runtime", "precision", "device", "match"),
    [
        ("torch", "int8", "cpu", "needs runtime='onnx' or 'openvino'"),
        ("onnx", "fp16", "cpu", "runs fp32 or int8"),
        ("openvino", "fp32", "cuda", "CPU only"),
        ("tensorrt", "fp32", "cpu", "unknown runtime"),
    ],
)
def test_impossible_combinations_are_refused(
    runtime: str, precision: str, device: str, match: str
) -> None:
    with pytest.raises(EncoderError, match=match):
        check_runtime(runtime, precision, device)
    # pydantic rejects a value outside the Literal itself, naming the allowed ones.
    with pytest.raises((EncoderError, ValueError), match=f"{match}|'torch', 'onnx' or 'openvino'"):
        ImageEmbeddings("timm:test_vit", runtime=runtime, precision=precision, device=device)


@pytest.mark.parametrize(
    ("runtime", "module", "extra"),
    [("onnx", "onnxruntime", "[onnx]"), ("openvino", "openvino", "[openvino]")],
)
def test_missing_runtime_names_the_extra(
    tiny_clip_encoder: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
    module: str,
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # "import module" now raises ImportError
    with pytest.raises(MissingDependencyError, match=rf"langchain-image-embeddings\{extra}"):
        with_runtime(tiny_clip_encoder, runtime, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before exporting anything


def test_unusable_cache_folder_is_an_encoder_error_naming_it(tmp_path: Path) -> None:
    # A file where the cache folder should be (or a read-only file system) raised a raw
    # FileExistsError / FileNotFoundError out of the first embedding call.
    from langchain_image_embeddings.encoders.runtimes.cache import ExportCache

    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    cache = ExportCache(blocker / "runtimes")
    with pytest.raises(
        EncoderError, match=r"cannot create the export cache folder .*IMGEMB_CACHE_DIR"
    ):
        cache.get_or_build({"model": "demo"}, lambda folder: (folder / "m.txt").write_text("x"))


@pytest.mark.parametrize("runtime", ["torch", *RUNTIMES])
def test_loaded_embeddings_pickle_and_deepcopy(
    tiny_clip_encoder: Any, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    """Multiprocessing, Ray and ``copy.deepcopy`` copy a loaded model: its lock (and the
    runtimes' native sessions) made that ``TypeError: cannot pickle '_thread.lock'``."""
    import copy
    import pickle

    monkeypatch.setenv("IMGEMB_CACHE_DIR", str(cache_dir))
    embeddings = ImageEmbeddings(copy.deepcopy(tiny_clip_encoder), device="cpu", runtime=runtime)
    images = [np.full((32, 40, 3), v, dtype=np.uint8) for v in (30, 200)]
    vectors = embeddings.embed_images_array(images)
    text = embeddings.embed_query("a cat")
    for clone in (pickle.loads(pickle.dumps(embeddings)), copy.deepcopy(embeddings)):
        assert clone.encoder is not embeddings.encoder
        assert np.abs(clone.embed_images_array(images) - vectors).max() <= 1e-6
        assert np.abs(np.asarray(clone.embed_query("a cat")) - np.asarray(text)).max() <= 1e-6
