"""Round trip: train -> save_pretrained -> local:DIR / from_pretrained -> identical vectors."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from langchain_image_embeddings import ImageEmbeddings  # noqa: E402
from langchain_image_embeddings.encoders import create_encoder  # noqa: E402
from langchain_image_embeddings.encoders.local import (  # noqa: E402
    FineTunedEncoder,
    LocalEncoder,
    save_pretrained,
)
from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder  # noqa: E402
from langchain_image_embeddings.encoders.pooling import ProjectionHead  # noqa: E402
from langchain_image_embeddings.errors import EncoderError, WeightsNotFoundError  # noqa: E402
from langchain_image_embeddings.training import CaptionedImages, LabeledImages, fit  # noqa: E402

# Tiny models on a shared 2-core machine run far faster on one thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every pickle-based loader fail: loading must not need one."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a checkpoint went through pickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def _photo_classes(photos_dir: Path) -> LabeledImages:
    """Each skimage photo and its transformed copies form one class."""
    sources: list[Any] = []
    labels: list[str] = []
    for original in sorted(photos_dir.glob("*.jpg"))[:4]:
        name = original.stem
        for path in [original, *sorted((photos_dir / "copies").glob(f"{name}-*.jpg"))]:
            sources.append(str(path))
            labels.append(name)
    return LabeledImages(sources, labels)


def test_lite0_head_round_trip_identical_vectors(
    lite0_embeddings: Any, photos_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _photo_classes(photos_dir)
    result = fit(
        lite0_embeddings.encoder, data, None, loss="triplet", mode="head", epochs=3,
        embedding_dim=64, batch_size=10, show_progress=False,
    )  # fmt: skip
    out = result.save_pretrained(tmp_path / "lite0-head")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["base_spec"] == "timm:efficientnet_lite0"
    assert config["head"] == {"in_dim": 1280, "hidden_dim": 64, "embedding_dim": 64}
    assert config["dim"] == 64 and config["preprocess"]["input_size"] == [224, 224]
    assert config["training"]["config"]["loss"] == "triplet"
    assert len(config["training"]["history"]) == 3

    images = [data.sources[i] for i in (0, 5, 10, 15)]
    in_memory = ImageEmbeddings(result.encoder, device="cpu").embed_images_array(images)
    # Loading never uses pickle, nor the base model's own weights package.
    monkeypatch.setattr(
        "langchain_image_embeddings.encoders.timm._lite0_from_package",
        lambda timm: (_ for _ in ()).throw(AssertionError("base weights were loaded")),
    )
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    loaded = ImageEmbeddings.from_pretrained(str(out), device="cpu")
    reloaded = loaded.embed_images_array(images)
    assert loaded.model_id == f"local:{out}"
    assert loaded.dim == 64 and reloaded.shape == (4, 64)
    assert np.abs(reloaded - in_memory).max() <= 1e-6
    assert isinstance(loaded.encoder, LocalEncoder)
    fingerprint = loaded.encoder.fingerprint()
    assert fingerprint["spec"] == f"local:{out}" and "sha256:" in fingerprint["weights"]


def test_tiny_clip_full_round_trip_images_and_texts(
    tiny_clip_name: str, tmp_path: Path, no_pickle: None
) -> None:
    torch.manual_seed(0)
    encoder = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(8)]
    captions = [f"photo number {i}" for i in range(8)]
    result = fit(
        encoder, CaptionedImages(images, captions), None, loss="infonce", mode="full",
        epochs=2, batch_size=4, lr=1e-3, show_progress=False,
    )  # fmt: skip
    out = save_pretrained(result.encoder, tmp_path / "clip", training={"note": "test"})
    before_images = ImageEmbeddings(result.encoder, device="cpu").embed_images_array(images)
    before_texts = ImageEmbeddings(result.encoder, device="cpu").embed_texts_array(captions)
    loaded = ImageEmbeddings(f"local:{out}", device="cpu")
    assert loaded.supports_text
    assert np.abs(loaded.embed_images_array(images) - before_images).max() <= 1e-6
    assert np.abs(loaded.embed_texts_array(captions) - before_texts).max() <= 1e-6
    # The fine-tuned weights differ from a fresh random model: they really were saved.
    torch.manual_seed(1)
    fresh = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    fresh_vectors = ImageEmbeddings(fresh, device="cpu").embed_images_array(images)
    assert np.abs(fresh_vectors - before_images).max() > 1e-3
    assert json.loads((out / "config.json").read_text())["training"] == {"note": "test"}


def test_text_head_round_trip_and_finetune_from_local(tiny_clip_name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    base = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    plain = save_pretrained(base, tmp_path / "plain")
    # A saved model without heads is a valid base for further fine-tuning.
    local = create_encoder(f"local:{plain}")
    data = CaptionedImages(
        [Image.new("RGB", (32, 32), (random.Random(i).randint(0, 255), 0, 0)) for i in range(6)],
        [f"shade {i}" for i in range(6)],
    )
    result = fit(local, data, None, loss="infonce", mode="head", epochs=2, batch_size=3,
                 embedding_dim=8, show_progress=False)  # fmt: skip
    out = result.save_pretrained(tmp_path / "heads")
    config = json.loads((out / "config.json").read_text())
    assert config["base_spec"] == f"open_clip:{tiny_clip_name}"
    assert config["text_head"]["embedding_dim"] == 8
    loaded = ImageEmbeddings.from_pretrained(str(out), device="cpu")
    expected = ImageEmbeddings(result.encoder, device="cpu")
    assert (
        np.abs(
            loaded.embed_texts_array(["shade 1"]) - expected.embed_texts_array(["shade 1"])
        ).max()
        <= 1e-6
    )
    assert loaded.dim == 8


def test_image_head_without_text_head_disables_text(tiny_clip_name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    base = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    encoder = FineTunedEncoder(base, head=ProjectionHead(32, 8))
    assert not encoder.has_text
    with pytest.raises(EncoderError, match="text"):
        encoder.encode_texts(["a cat"])
    out = save_pretrained(encoder, tmp_path / "m")
    assert not ImageEmbeddings.from_pretrained(str(out)).supports_text


def test_missing_or_foreign_directories_raise(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="save_pretrained"):
        create_encoder(f"local:{tmp_path / 'nothing'}")
    (tmp_path / "config.json").write_text(json.dumps({"hello": "world"}))
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsNotFoundError, match="config"):
        create_encoder(f"local:{tmp_path}")
    # from_pretrained checks the folder at once, not at the first embedding
    with pytest.raises(WeightsNotFoundError, match="save_pretrained"):
        ImageEmbeddings.from_pretrained(str(tmp_path / "typo"))
    with pytest.raises(WeightsNotFoundError, match="config"):
        ImageEmbeddings.from_pretrained(str(tmp_path))


def test_corrupt_weights_raise(tiny_clip_name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    base = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    out = save_pretrained(base, tmp_path / "m")
    (out / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsNotFoundError, match="safetensors"):
        create_encoder(f"local:{out}").load()


def test_core_import_does_not_pull_training() -> None:
    import subprocess
    import sys

    code = (
        "import sys, langchain_image_embeddings.encoders.local\n"
        "assert not any(m.startswith('langchain_image_embeddings.training') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_relative_local_model_is_recorded_absolute_in_python(
    tiny_clip_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ImageEmbeddings("local:my-model")`` recorded the relative spec in stores, so the
    store could not be opened (its recorded model loaded) from any other folder."""
    from langchain_image_embeddings import FAISSImageStore
    from langchain_image_embeddings.vectorstores import store_info

    encoder = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    work = tmp_path / "work"
    save_pretrained(encoder, work / "my-model")
    monkeypatch.chdir(work)
    embeddings = ImageEmbeddings("local:my-model", device="cpu")
    assert embeddings.model == f"local:{(work / 'my-model').resolve()}"
    image = Image.fromarray(np.full((24, 24, 3), 90, dtype=np.uint8))
    image.save(tmp_path / "a.png")
    store = FAISSImageStore(embeddings, tmp_path / "store")
    store.add_images([str(tmp_path / "a.png")])
    store.save()
    store.close()
    monkeypatch.chdir(tmp_path)  # elsewhere: the recorded model must still load
    recorded = store_info(f"faiss:{tmp_path / 'store'}")["model"]
    assert recorded == embeddings.model
    reopened = FAISSImageStore(ImageEmbeddings(recorded, device="cpu"), tmp_path / "store")
    hits = reopened.similarity_search_by_image(str(tmp_path / "a.png"), k=1)
    assert [Path(d.metadata["source"]).name for d in hits] == ["a.png"]
    assert ImageEmbeddings("local:missing-model").model == "local:missing-model"


def test_save_pretrained_onto_a_file_says_so(tiny_clip_name: str, tmp_path: Path) -> None:
    """Saving to a path that is a file raised a bare '[Errno 17] File exists'."""
    target = tmp_path / "model"
    target.write_text("not a folder")
    encoder = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    with pytest.raises(FileExistsError, match="it is a file, not a directory"):
        save_pretrained(encoder, target)
    assert target.read_text() == "not a folder"


def test_a_model_retrained_into_the_same_folder_is_named_as_changed(
    tiny_clip_name: str, tmp_path: Path
) -> None:
    """The refusal named the same model twice ("written by 'local:X' ... opening it with
    'local:X'"): it now says the weights or options behind that name changed."""
    from langchain_image_embeddings import FAISSImageStore
    from langchain_image_embeddings.errors import ModelMismatchError

    torch.manual_seed(0)
    first = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    model = save_pretrained(first, tmp_path / "model")
    Image.fromarray(np.full((24, 24, 3), 90, dtype=np.uint8)).save(tmp_path / "a.png")
    with FAISSImageStore(ImageEmbeddings(f"local:{model}", device="cpu"), tmp_path / "s") as s:
        s.add_images([str(tmp_path / "a.png")])
    torch.manual_seed(1)
    retrained = OpenCLIPEncoder(tiny_clip_name, pretrained=None, allow_random_weights=True)
    save_pretrained(retrained, model)
    with pytest.raises(ModelMismatchError, match="with other weights or options"):
        FAISSImageStore(ImageEmbeddings(f"local:{model}", device="cpu"), tmp_path / "s")
