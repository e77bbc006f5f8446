"""The model registry, offline loading (local weights and tokenizers) and model folders.

Everything runs offline: the registry's families are built as tiny models of the same classes
(see ``tiny_families``), tokenizers are made in the test, and the hub's download functions are
replaced by ones that copy files written here.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from langchain_image_embeddings import (
    ImageEmbeddings,
    MissingDependencyError,
    WeightsNotFoundError,
    create_encoder,
    list_models,
)
from langchain_image_embeddings.cli import main
from langchain_image_embeddings.encoders import find_model
from langchain_image_embeddings.encoders.download import download_model
from langchain_image_embeddings.encoders.folders import MANIFEST_FILE, read_model_folder
from langchain_image_embeddings.errors import EncoderError
from tests.unit_tests.tiny_families import (
    WORDS,
    shrink_registry,
    tiny_tokenizer,
    tiny_xlmr_config,
)

ROOT = Path(__file__).resolve().parents[2]
RANDOM = {"pretrained": None, "allow_random_weights": True}
SIGLIP2 = "ViT-B-16-SigLIP2"
XLMR = "xlm-roberta-base-ViT-B-32"


def _photos() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)),
        Image.new("RGB", (90, 60), "red"),
    ]


# -- the registry's facts ----------------------------------------------------------------------


def test_registry_covers_the_families_the_issue_names() -> None:
    specs = {m.spec for m in list_models()}
    families = {m.family for m in list_models()}
    assert {
        "CLIP",
        "SigLIP",
        "SigLIP 2",
        "MobileCLIP",
        "MobileCLIP2",
        "EVA02-CLIP",
        "PE-Core",
        "multilingual CLIP",
    } <= families
    for spec in (
        "open_clip:ViT-B-32",
        "open_clip:ViT-B-16",
        "open_clip:ViT-L-14",
        "open_clip:ViT-L-14-quickgelu",  # OpenAI's weights
        "open_clip:ViT-B-16-SigLIP2",
        "open_clip:ViT-B-16-SigLIP2-384",
        "open_clip:ViT-SO400M-14-SigLIP2",
        "open_clip:MobileCLIP2-S0",
        "open_clip:MobileCLIP-S2",
        "open_clip:MobileCLIP2-B",
        "timm:efficientnet_lite0",
        "torchvision:resnet50",
    ):
        assert spec in specs
    for info in list_models():
        assert info.dim and info.input_size and info.licence and info.pretrained, info.spec


@pytest.mark.parametrize(
    "info", [m for m in list_models() if m.backend == "open_clip"], ids=lambda m: m.spec
)
def test_open_clip_entries_match_open_clip(info: Any) -> None:
    """Dimension and input size are open_clip's own; the tag listed is the one that loads."""
    import open_clip

    config = open_clip.get_model_config(info.architecture)
    assert config["embed_dim"] == info.dim
    assert config["vision_cfg"]["image_size"] == info.input_size
    assert info.pretrained in open_clip.list_pretrained_tags_by_model(info.architecture)
    assert create_encoder(info.spec).weights_id == info.pretrained  # nothing is built
    assert info.towers == ("image", "text")


def test_list_models_filters_and_is_public() -> None:
    import langchain_image_embeddings

    assert langchain_image_embeddings.list_models is list_models
    assert [m.spec for m in list_models(offline=True)] == ["timm:efficientnet_lite0"]
    text = list_models(text=True)
    assert text and all("text" in m.towers for m in text)
    assert "torchvision:resnet50" not in {m.spec for m in text}
    assert find_model("open_clip:not-a-model") is None


def test_measured_numbers_are_read_from_the_benchmark_file() -> None:
    from langchain_image_embeddings.encoders.catalog import SPEEDS_FILE, measured_on

    data = json.loads(SPEEDS_FILE.read_text(encoding="utf-8"))
    assert measured_on() == data["machine"] and data["machine"]
    for spec, row in data["models"].items():
        info = find_model(spec)
        assert info is not None, f"{SPEEDS_FILE.name} measures {spec}, not in the registry"
        assert info.params_m == row["params_m"]
        assert info.cpu_img_per_s == row["img_per_s"]
    assert {m.spec for m in list_models()} == set(data["models"])


def test_unknown_names_still_work() -> None:
    encoder = create_encoder("open_clip:RN50", **RANDOM)
    assert encoder.spec == "open_clip:RN50" and find_model(encoder.spec) is None


# -- every family builds and embeds (tiny configs of the same classes) --------------------------

FAMILIES = [
    "ViT-B-32",
    "ViT-L-14-quickgelu",
    "ViT-B-16-SigLIP",
    "ViT-B-16-SigLIP2-384",
    "ViT-SO400M-14-SigLIP2",
    "MobileCLIP-S1",
    "MobileCLIP-B",
    "MobileCLIP2-S0",
    "EVA02-B-16",
    "PE-Core-B-16",
    XLMR,
]


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_builds_and_embeds_images_and_text(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shrink_registry(monkeypatch, [name])
    options: dict[str, Any] = dict(RANDOM)
    if "SigLIP" in name or name == XLMR:
        options["tokenizer"] = tiny_tokenizer(tmp_path / "text")
    if name == XLMR:
        tiny_xlmr_config(tmp_path / "text")
    embeddings = ImageEmbeddings(f"open_clip:{name}", model_kwargs=options)
    images = embeddings.embed_images_array(_photos())
    texts = np.asarray(embeddings.embed_documents(["a photo of a cat", "a dog on a sofa"]))
    assert images.shape == texts.shape == (2, 32)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-4)
    assert np.isfinite(texts).all() and not np.allclose(texts[0], texts[1])


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["timm:vit_base_patch16_224", "torchvision:resnet50"])
def test_backbones_build_and_embed_images(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shrink_registry(monkeypatch, [])
    info = find_model(spec)
    assert info is not None and info.towers == ("image",)
    vectors = ImageEmbeddings(spec, model_kwargs=RANDOM).embed_images_array(_photos())
    assert vectors.shape[0] == 2 and np.isfinite(vectors).all()


# -- SigLIP offline: the tokenizer from a local folder or file ---------------------------------


def test_siglip_tokenizer_loads_from_a_local_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoTokenizer

    shrink_registry(monkeypatch, [SIGLIP2])
    folder = tiny_tokenizer(tmp_path / "tok")
    encoder = create_encoder(f"open_clip:{SIGLIP2}", **RANDOM, tokenizer=folder)
    tokens = encoder.tokenize(["a photo of a cat"])  # type: ignore[attr-defined]
    reference = AutoTokenizer.from_pretrained(str(folder))("a photo of a cat")["input_ids"]
    assert tokens.shape == (1, 64)  # SigLIP 2's context length, padded
    assert tokens[0, : len(reference)].tolist() == reference == [4, 5, 6, 4, 7]
    assert set(tokens[0, len(reference) :].tolist()) == {WORDS.index("<pad>")}
    # A file of the folder names it too.
    by_file = create_encoder(f"open_clip:{SIGLIP2}", **RANDOM, tokenizer=folder / "tokenizer.json")
    assert torch.equal(by_file.tokenize(["a photo of a cat"]), tokens)  # type: ignore[attr-defined]


def test_siglip_without_a_local_tokenizer_offline_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shrink_registry(monkeypatch, [SIGLIP2])
    encoder = create_encoder(f"open_clip:{SIGLIP2}", **RANDOM)
    with pytest.raises(WeightsNotFoundError) as caught:
        encoder.load()
    message = str(caught.value)
    assert "timm/ViT-B-16-SigLIP2" in message
    assert "tokenizer=" in message and "imgemb models download" in message


def test_missing_tokenizer_path_is_named(tmp_path: Path) -> None:
    encoder = create_encoder(f"open_clip:{SIGLIP2}", **RANDOM, tokenizer=tmp_path / "nope")
    with pytest.raises(WeightsNotFoundError, match=re.escape(str(tmp_path / "nope"))):
        encoder.load()
    empty = tmp_path / "empty"
    empty.mkdir()
    encoder = create_encoder(f"open_clip:{SIGLIP2}", **RANDOM, tokenizer=empty)
    with pytest.raises(WeightsNotFoundError, match="no tokenizer files"):
        encoder.load()


def test_missing_transformers_is_a_package_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    embeddings = ImageEmbeddings(f"open_clip:{SIGLIP2}", model_kwargs=RANDOM)
    with pytest.raises(MissingDependencyError) as caught:
        embeddings.embed_query("a cat")
    assert type(caught.value) is MissingDependencyError  # not a raw ModuleNotFoundError
    assert "langchain-image-embeddings[open-clip]" in str(caught.value)
    assert SIGLIP2 in str(caught.value)


def test_open_clip_extra_installs_transformers() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    for extra in ("open-clip", "all"):
        assert any(re.match(r"transformers\b", r) for r in extras[extra]), extra


def test_builtin_tokenizer_models_refuse_a_tokenizer_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shrink_registry(monkeypatch, ["ViT-B-32"])
    encoder = create_encoder(
        "open_clip:ViT-B-32", **RANDOM, tokenizer=tiny_tokenizer(tmp_path / "t")
    )
    with pytest.raises(EncoderError, match="open_clip's own tokenizer"):
        encoder.load()


# -- models download -> a folder that loads offline ---------------------------------------------


class FakeHub:
    """Stands in for ``huggingface_hub``'s download functions, serving files written here."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str]] = []

    def repo(self, repo_id: str) -> Path:
        path = self.root / repo_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def hf_hub_download(self, repo_id: str, filename: str, **_: Any) -> str:
        self.calls.append((repo_id, filename))
        path = self.root / repo_id / filename
        if not path.is_file():
            raise FileNotFoundError(f"404: {repo_id}/{filename}")
        return str(path)

    def snapshot_download(self, repo_id: str, allow_patterns: list[str], **_: Any) -> str:
        self.calls.append((repo_id, "*"))
        if not (self.root / repo_id).is_dir():
            raise FileNotFoundError(f"404: {repo_id}")
        return str(self.root / repo_id)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    import huggingface_hub

    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


def _publish(hub: FakeHub, name: str, repo: str, *, tokenizer: bool) -> torch.nn.Module:
    """A seeded tiny model's weights (and a tokenizer) in the fake hub repo ``repo``."""
    import open_clip
    from safetensors.torch import save_model

    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    save_model(model, str(hub.repo(repo) / "open_clip_model.safetensors"))
    if tokenizer:
        tiny_tokenizer(hub.repo(repo))
    return model


@pytest.mark.slow
def test_download_writes_a_folder_that_loads_offline(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shrink_registry(monkeypatch, [SIGLIP2])
    published = _publish(hub, SIGLIP2, "timm/ViT-B-16-SigLIP2", tokenizer=True)
    folder = download_model(f"open_clip:{SIGLIP2}", tmp_path / "siglip2")

    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["spec"] == f"open_clip:{SIGLIP2}" and manifest["pretrained"] == "webli"
    assert manifest["weights"] == "open_clip_model.safetensors" and manifest["text"] == "text"
    assert manifest["settings"]["mean"] == [0.5, 0.5, 0.5]  # SigLIP's, not CLIP's
    assert (folder / "text" / "tokenizer.json").is_file()
    assert ("timm/ViT-B-16-SigLIP2", "open_clip_model.safetensors") in hub.calls

    # The air-gapped machine: no hub at all, only the folder.
    monkeypatch.setattr(hub, "root", tmp_path / "gone")
    encoder = create_encoder(f"open_clip:{SIGLIP2}", pretrained=str(folder))
    config = encoder.preprocess_config
    assert config.mean == (0.5, 0.5, 0.5) and config.resize_mode == "squash"
    pixels = encoder.preprocess_batch(_photos())
    published.eval()
    with torch.inference_mode():
        expected_images = published.encode_image(pixels)
        tokens = encoder.tokenize(["a photo of a cat"])  # type: ignore[attr-defined]
        expected_text = published.encode_text(tokens)
    assert torch.allclose(encoder.encode_images(pixels), expected_images, atol=1e-5)
    assert torch.allclose(encoder.encode_texts(["a photo of a cat"]), expected_text, atol=1e-5)
    assert tokens[0, :5].tolist() == [4, 5, 6, 4, 7]


@pytest.mark.slow
def test_download_of_a_multilingual_clip_carries_its_text_tower_config(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shrink_registry(monkeypatch, [XLMR])
    tiny_xlmr_config(hub.repo("xlm-roberta-base"))
    tiny_tokenizer(hub.repo("xlm-roberta-base"))
    # The published CLIP checkpoint: a tiny XLM-R CLIP built from the same local config.
    local = ImageEmbeddings(
        f"open_clip:{XLMR}", model_kwargs={**RANDOM, "tokenizer": hub.repo("xlm-roberta-base")}
    )
    from safetensors.torch import save_model

    save_model(local.encoder.module, str(hub.repo("laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k") / "open_clip_model.safetensors"))  # fmt: skip
    folder = download_model(f"open_clip:{XLMR}", tmp_path / "xlmr")
    assert (folder / "text" / "config.json").is_file()
    loaded = ImageEmbeddings(f"open_clip:{XLMR}", model_kwargs={"pretrained": str(folder)})
    texts = ["a photo of a cat"]
    assert np.allclose(loaded.embed_documents(texts), local.embed_documents(texts), atol=1e-5)


def test_download_of_a_timm_model_loads_offline(hub: FakeHub, tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_model

    torch.manual_seed(0)
    published = timm.create_model("resnet18", pretrained=False)
    save_model(published, str(hub.repo("timm/resnet18.a1_in1k") / "model.safetensors"))
    folder = download_model("timm:resnet18", tmp_path / "r18")
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert (manifest["spec"], manifest["pretrained"], manifest["text"]) == (
        "timm:resnet18",
        "a1_in1k",
        None,
    )
    encoder = create_encoder("timm:resnet18", pretrained=str(folder))
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    published.reset_classifier(0)
    published.eval()
    with torch.inference_mode():
        expected = published(pixels)
    assert torch.allclose(encoder.encode_images(pixels), expected, atol=1e-5)


def test_download_offline_is_a_clear_package_error(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as caught:
        download_model(f"open_clip:{SIGLIP2}", tmp_path / "out")
    message = str(caught.value)
    assert "timm/ViT-B-16-SigLIP2" in message and "huggingface.co" in message
    assert not (tmp_path / "out" / MANIFEST_FILE).exists()  # no manifest: not a model folder


def test_download_refuses_what_it_cannot_fetch(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="needs no download"):
        download_model("timm:efficientnet_lite0", tmp_path / "a")
    with pytest.raises(EncoderError, match="torchvision"):
        download_model("torchvision:resnet50", tmp_path / "b")
    with pytest.raises(EncoderError, match="no weights 'nope'"):
        download_model("open_clip:ViT-B-32", tmp_path / "c", pretrained="nope")


def test_a_folder_for_another_model_or_missing_files_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    manifest = {
        "format": "langchain-image-embeddings/model-folder",
        "format_version": 1,
        "spec": "open_clip:ViT-B-32",
        "weights": "open_clip_model.safetensors",
        "text": None,
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(WeightsNotFoundError, match=r"open_clip_model\.safetensors is missing"):
        read_model_folder(folder, model="open_clip:ViT-B-32")
    (folder / "open_clip_model.safetensors").write_bytes(b"")
    with pytest.raises(WeightsNotFoundError, match="holds open_clip:ViT-B-32, not"):
        read_model_folder(folder, model=f"open_clip:{SIGLIP2}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsNotFoundError, match="no weights file in"):
        create_encoder("open_clip:ViT-B-32", pretrained=str(empty)).load()


# -- imgemb models -----------------------------------------------------------------------------


def test_cli_models_json_lists_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert [r["spec"] for r in rows] == [m.spec for m in list_models()]
    siglip = next(r for r in rows if r["spec"] == f"open_clip:{SIGLIP2}")
    assert siglip["dim"] == 768 and siglip["towers"] == ["image", "text"]
    assert siglip["licence"] == "Apache-2.0" and siglip["pretrained"] == "webli"
    assert main(["models", "--text", "--json"]) == 0
    assert all("text" in r["towers"] for r in json.loads(capsys.readouterr().out)["models"])
    assert main(["models", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "timm:efficientnet_lite0" in out and "open_clip:ViT-B-32 " not in out


def test_cli_models_download_offline_exits_with_the_model_error(
    hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["models", "download", f"open_clip:{SIGLIP2}", "--to", str(tmp_path / "d")])
    assert code == 3
    assert "huggingface.co" in capsys.readouterr().err


# -- docs/models.md --------------------------------------------------------------------------


def test_docs_table_is_the_registry() -> None:
    from langchain_image_embeddings.cli.models import registry_table

    doc = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    start, end = "<!-- registry-table:start -->", "<!-- registry-table:end -->"
    table = doc[doc.index(start) + len(start) : doc.index(end)].strip()
    assert table == registry_table().strip(), (
        "docs/models.md is out of date: python -m langchain_image_embeddings.cli models "
        "--markdown, pasted between the registry-table markers"
    )
