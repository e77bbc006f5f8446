"""Regressions found by probing fine-tuning like an outside user, and the losses checked
against reference formulas (``torch.nn.TripletMarginLoss``, open_clip's ``ClipLoss``,
brute-force triplet mining).

Each regression test names what used to happen.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from langchain_image_embeddings.encoders import create_encoder  # noqa: E402
from langchain_image_embeddings.encoders.local import FineTunedEncoder  # noqa: E402
from langchain_image_embeddings.encoders.open_clip import OpenCLIPEncoder  # noqa: E402
from langchain_image_embeddings.errors import EncoderError  # noqa: E402
from langchain_image_embeddings.training import (  # noqa: E402
    CaptionedImages,
    FitConfig,
    InfoNCELoss,
    LabeledImages,
    TripletLoss,
    fit,
)
from langchain_image_embeddings.training.losses import pairwise_distances  # noqa: E402
from langchain_image_embeddings.training.toy_data import captioned_shapes  # noqa: E402
from langchain_image_embeddings.training.trainers import _trainable_names  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _squares(n_per_label: dict[str, int]) -> LabeledImages:
    colours = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 30)}
    sources: list[object] = []
    labels: list[str] = []
    for label, n in n_per_label.items():
        for i in range(n):
            sources.append(Image.new("RGB", (32, 32), tuple(c + 5 * i for c in colours[label])))
            labels.append(label)
    return LabeledImages(sources, labels)  # type: ignore[arg-type]


# -- losses against references -------------------------------------------------------------


def _brute_triplet(x: torch.Tensor, labels: list[int], margin: float, mining: str) -> float:
    d = pairwise_distances(x, x, "euclidean").tolist()
    n = len(labels)
    pairs = [(a, p) for a in range(n) for p in range(n) if a != p and labels[a] == labels[p]]
    negs = {a: [d[a][k] for k in range(n) if labels[k] != labels[a]] for a in range(n)}
    if mining == "all":
        losses = [max(0.0, d[a][p] - dn + margin) for a, p in pairs for dn in negs[a]]
        active = [v for v in losses if v > 1e-16]
        return sum(active) / len(active) if active else 0.0
    if mining == "hard":
        per_anchor = [
            max(0.0, max(d[a][p] for q, p in pairs if q == a) - min(negs[a]) + margin)
            for a in range(n)
            if any(q == a for q, _ in pairs) and negs[a]
        ]
        return sum(per_anchor) / len(per_anchor)
    per_pair = []
    for a, p in pairs:
        farther = [dn for dn in negs[a] if dn > d[a][p]]
        chosen = min(farther) if farther else max(negs[a])
        per_pair.append(max(0.0, d[a][p] - chosen + margin))
    return sum(per_pair) / len(per_pair)


@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
@pytest.mark.parametrize("margin", [0.0, 0.2, 2.0])
def test_triplet_mining_matches_brute_force(mining: str, margin: float) -> None:
    torch.manual_seed(0)
    x = F.normalize(torch.randn(10, 6), dim=-1)
    labels = [0, 0, 0, 1, 1, 2, 2, 2, 3, 4]  # 3 and 4 have no positive
    got = float(TripletLoss(margin, "euclidean", mining)(x, torch.tensor(labels)))  # type: ignore[arg-type]
    assert got == pytest.approx(_brute_triplet(x, labels, margin, mining), abs=1e-5)


def test_explicit_triplets_match_torch_triplet_margin_loss() -> None:
    torch.manual_seed(1)
    a, p, n = torch.randn(3, 5, 4).unbind(0)
    ref = torch.nn.TripletMarginLoss(margin=0.3, eps=0.0)(a, p, n)
    assert float(TripletLoss(0.3).forward_triplets(a, p, n)) == pytest.approx(float(ref), abs=1e-6)


@pytest.mark.parametrize("labels", [[0], [0, 0, 0], [0, 1, 2], [0, 0, 1]])
@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
def test_triplet_degenerate_batches_have_finite_gradients(labels: list[int], mining: str) -> None:
    x = torch.randn(len(labels), 4, requires_grad=True)
    loss = TripletLoss(0.2, "euclidean", mining)(F.normalize(x, dim=-1), torch.tensor(labels))  # type: ignore[arg-type]
    loss.backward()
    assert torch.isfinite(loss) and x.grad is not None and bool(torch.isfinite(x.grad).all())
    if len(set(labels)) == len(labels) or len(set(labels)) == 1:
        assert float(loss.detach()) == 0.0  # no positive, or no negative: nothing to learn


def test_infonce_matches_open_clip_clip_loss_and_clamps() -> None:
    from open_clip.loss import ClipLoss

    torch.manual_seed(2)
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    loss = InfoNCELoss(0.07)
    ref = ClipLoss()(F.normalize(a, dim=-1), F.normalize(b, dim=-1), loss.scale())
    assert float(loss(a, b).detach()) == pytest.approx(float(ref.detach()), abs=1e-5)
    # A temperature below CLIP's 1/100 is clamped to it, and the clamp stops the gradient.
    cold = InfoNCELoss(0.001)
    assert cold.temperature == pytest.approx(0.01, rel=1e-5)
    cold(a, b).backward()
    assert float(cold.logit_scale.grad) == 0.0  # type: ignore[arg-type]
    assert float(InfoNCELoss()(a[:1], b[:1]).detach()) == 0.0  # one pair: no negative


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_losses_refuse_nan_and_inf_hyperparameters(bad: float) -> None:
    """``InfoNCELoss(nan)`` trained to NaN, ``InfoNCELoss(inf)`` died with 'math domain
    error', ``TripletLoss(margin=nan)`` gave NaN losses, FitConfig accepted them all."""
    with pytest.raises(ValueError, match="temperature must be > 0"):
        InfoNCELoss(bad)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        TripletLoss(bad)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        FitConfig(loss="infonce", temperature=bad)


# -- configuration that trained nothing ----------------------------------------------------


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"batch_size": 4}, "batch_size \\(4\\) must hold at least two labels"),
        ({"patience": 0}, "patience must be >= 1"),
        ({"early_stopping_k": 10}, "early_stopping_k must be 1 or 5"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"warmup_ratio": 2.0}, "warmup_ratio must be in"),
        ({"distance": "l1"}, "distance must be"),
        ({"mining": "x"}, "mining must be"),
        ({"margin": -0.1}, "margin must be >= 0"),
        ({"head_views": 0}, "head_views must be >= 1"),
        ({"unfreeze_blocks": 0}, "unfreeze_blocks must be >= 1"),
        ({"embedding_dim": 0}, "embedding_dim must be >= 1"),
        ({"grad_clip": 0.0}, "grad_clip must be > 0"),
    ],
)
def test_fit_config_refuses_options_that_train_nothing(
    options: dict[str, object], says: str
) -> None:
    """Each was accepted: ``batch_size=4`` with K=4 made one-label batches (loss 0.0 every
    epoch), ``patience=0`` stopped after epoch 1 while recall rose, ``early_stopping_k=10``
    silently stopped on recall@1, the others failed later or trained nonsense."""
    with pytest.raises(ValueError, match=says):
        FitConfig(**options)  # type: ignore[arg-type]
    FitConfig(batch_size=4, samples_per_class=2)  # two labels of K=2 fit
    FitConfig(loss="infonce", batch_size=4)  # K only matters to the triplet loss


def test_fit_refuses_training_data_without_a_positive_pair(
    fresh_tiny_clip: OpenCLIPEncoder,
) -> None:
    """One training image per label built no batch at all: fit returned the random head
    with loss 0.0 for every epoch."""
    with pytest.raises(ValueError, match="none of the 2 labels has 2 training images"):
        fit(fresh_tiny_clip, _squares({"red": 1, "blue": 1}), None, mode="head",
            embedding_dim=8, epochs=1, batch_size=8, show_progress=False)  # fmt: skip


def test_small_batches_now_learn(fresh_tiny_clip: OpenCLIPEncoder) -> None:
    data = _squares({"red": 4, "blue": 4, "green": 4})
    result = fit(fresh_tiny_clip, data, None, mode="head", embedding_dim=8, epochs=2,
                 batch_size=4, samples_per_class=2, show_progress=False)  # fmt: skip
    assert any(h.loss > 0 for h in result.history)


# -- saved models trained again ------------------------------------------------------------


def test_partial_mode_on_a_saved_head_model_trains_its_head_and_projections(
    fresh_tiny_clip: OpenCLIPEncoder, tmp_path: Path
) -> None:
    """Training ``local:DIR`` again wraps it once more (``base.head.*``,
    ``base.base.visual.proj``): partial mode froze its heads and projections, and adding
    ``embedding_dim`` trained a second head, then failed to save."""
    pairs = captioned_shapes(per_combo=1, seed=0)
    first = fit(fresh_tiny_clip, pairs, None, loss="infonce", mode="head", embedding_dim=8,
                epochs=1, batch_size=8, show_progress=False)  # fmt: skip
    first.save_pretrained(tmp_path / "m")
    local = create_encoder(f"local:{tmp_path / 'm'}")
    wrapped = FineTunedEncoder(local)
    wrapped.load()
    names = _trainable_names(wrapped.module, "partial", 1)
    for expected in ("base.head.net.0.weight", "base.text_head.net.2.bias",
                     "base.base.visual.proj", "base.base.text_projection"):  # fmt: skip
        assert expected in names
    assert not any(".resblocks.0." in n and ".visual." in n for n in names)  # frozen early block
    with pytest.raises(ValueError, match="already has a projection head"):
        fit(f"local:{tmp_path / 'm'}", pairs, None, loss="infonce", mode="partial",
            embedding_dim=8, epochs=1, batch_size=8, show_progress=False)  # fmt: skip
    head_before = local.head.net[0].weight.detach().clone()  # type: ignore[union-attr,index]
    again = fit(local, pairs, None, loss="infonce", mode="partial", unfreeze_blocks=1,
                epochs=1, batch_size=8, lr=1e-2, show_progress=False)  # fmt: skip
    assert not torch.equal(head_before, local.head.net[0].weight)  # type: ignore[union-attr,index]
    again.save_pretrained(tmp_path / "m2")
    assert json.loads((tmp_path / "m2" / "config.json").read_text())["head"]["embedding_dim"] == 8


def test_image_head_on_a_clip_names_the_missing_text_head(
    fresh_tiny_clip: OpenCLIPEncoder,
) -> None:
    """The error said 'has no text tower ... use a CLIP-type model' for a model that is a
    CLIP: the real cause is an image head trained without a text head."""
    data = _squares({"red": 2, "blue": 2})
    result = fit(fresh_tiny_clip, data, None, mode="head", embedding_dim=8, epochs=1,
                 batch_size=4, samples_per_class=2, show_progress=False)  # fmt: skip
    with pytest.raises(EncoderError, match="trained without a text head"):
        result.encoder.forward_texts(["a red square"])


# -- data files ----------------------------------------------------------------------------


def test_pair_files_bom_and_bad_rows(tmp_path: Path) -> None:
    """A spreadsheet CSV (UTF-8 BOM) was refused for lacking an 'image' column; a short row
    became the caption 'None', an unquoted comma silently cut the caption, a JSON null or
    list caption became 'None' / "['a']", and an empty image cell said '<folder>: no such
    image file'."""
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "bom.csv").write_text("image,caption\na.png,a cat\n", encoding="utf-8-sig")
    (tmp_path / "bom.jsonl").write_text('{"image": "a.png", "caption": "x"}\n', "utf-8-sig")
    assert CaptionedImages.from_file(tmp_path / "bom.csv").captions == ["a cat"]
    assert CaptionedImages.from_file(tmp_path / "bom.jsonl").captions == ["x"]
    bad = {
        "short.csv": ("image,caption\na.png,ok\na.png\n", "row 2: 'caption' is missing"),
        "comma.csv": ("image,caption\na.png,a cat, black\n", "row 1: more cells than columns"),
        "empty.csv": ("image,caption\n,x\n", "row 1: 'image' is empty"),
        "null.jsonl": ('{"image": "a.png", "caption": null}\n', "'caption' is missing"),
        "list.jsonl": ('{"image": "a.png", "caption": ["a"]}\n', "'caption' is not text"),
    }
    for name, (text, says) in bad.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=says):
            CaptionedImages.from_file(tmp_path / name)


def test_class_folders_skip_hidden_files_and_accept_bare_suffixes(tmp_path: Path) -> None:
    """``cat/._1.png`` (a macOS resource fork, not an image) was read as a training image and
    failed mid-training; ``suffixes=["png"]`` matched nothing."""
    for rel in ("cat/1.png", "cat/._1.png", "cat/.cache/2.png", "dog/3.png", "dog/sub/4.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / rel, format="PNG")
    data = LabeledImages.from_folder(tmp_path)
    assert [Path(str(s)).relative_to(tmp_path).as_posix() for s in data.sources] == [
        "cat/1.png", "dog/3.png", "dog/sub/4.png",
    ]  # fmt: skip
    assert len(LabeledImages.from_folder(tmp_path, suffixes=["png"])) == 3


def test_head_mode_caption_training_uses_the_extra_views(
    fresh_tiny_clip: OpenCLIPEncoder,
) -> None:
    """``head_views=3`` on caption pairs computed two augmented feature sets per image and
    then trained on the plain view only."""
    import random

    from langchain_image_embeddings.training.trainers import HeadTrainer

    pairs = captioned_shapes(per_combo=1, seed=0)
    cfg = FitConfig(loss="infonce", mode="head", head_views=3, embedding_dim=8, batch_size=8)
    trainer = HeadTrainer(fresh_tiny_clip, cfg)
    trainer.prepare(pairs, None)
    assert trainer.train_feats.shape[0] == 3
    trainer.train_feats[1:] = float("nan")  # mark the augmented views
    rng = random.Random(0)
    used = [bool(torch.isnan(trainer.step_loss([0, 1, 2], rng))) for _ in range(20)]
    assert any(used) and not all(used)


def test_fit_takes_the_image_embeddings_a_langchain_user_holds(
    fresh_tiny_clip: OpenCLIPEncoder,
) -> None:
    """``fit(ImageEmbeddings(...), ...)`` died with "'ImageEmbeddings' object has no
    attribute 'load'"; a wrong type or a plain list of data died deep inside."""
    from langchain_image_embeddings import ImageEmbeddings

    data = _squares({"red": 2, "blue": 2})
    embeddings = ImageEmbeddings(fresh_tiny_clip, device="cpu")
    result = fit(embeddings, data, None, mode="head", embedding_dim=8, epochs=1,
                 batch_size=4, samples_per_class=2, show_progress=False)  # fmt: skip
    assert result.encoder.base is fresh_tiny_clip and result.encoder.dim == 8
    with pytest.raises(TypeError, match="got int"):
        fit(42, data)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="train must be LabeledImages or CaptionedImages"):
        fit(fresh_tiny_clip, [("a.png", "x")])  # type: ignore[arg-type]


def test_caption_training_with_a_new_head_in_full_mode_gets_a_text_head(
    fresh_tiny_clip: OpenCLIPEncoder, tmp_path: Path
) -> None:
    """``fit(clip, pairs, mode="full", embedding_dim=8)`` added an image head only and the
    first step failed: texts had no way into the head's space."""
    import numpy as np

    from langchain_image_embeddings import ImageEmbeddings

    pairs = captioned_shapes(per_combo=1, seed=0)
    result = fit(fresh_tiny_clip, pairs, None, loss="infonce", mode="full", embedding_dim=8,
                 epochs=1, batch_size=8, show_progress=False)  # fmt: skip
    assert result.encoder.text_head is not None and result.encoder.has_text
    result.save_pretrained(tmp_path / "m")
    queries = ["a red circle on the left", "a blue square on the right"]
    in_memory = ImageEmbeddings(result.encoder, device="cpu").embed_texts_array(queries)
    reloaded = ImageEmbeddings.from_pretrained(str(tmp_path / "m"), device="cpu")
    assert in_memory.shape == (2, 8)
    np.testing.assert_allclose(reloaded.embed_texts_array(queries), in_memory, atol=1e-6)


def test_one_caption_in_validation_is_not_measurable(fresh_tiny_clip: OpenCLIPEncoder) -> None:
    """A validation split of one pair (e.g. ``split(0.2)`` of 5 pairs) reported text-to-image
    recall@1 1.000 before and after, whatever the model."""
    from langchain_image_embeddings.training.metrics import recall_not_measurable

    pairs = captioned_shapes(per_combo=1, seed=0)
    one = pairs.subset([0])
    assert "one distinct caption" in str(recall_not_measurable(one))
    assert recall_not_measurable(pairs.subset([0, 1])) is None
    result = fit(fresh_tiny_clip, pairs.subset(range(1, 9)), one, loss="infonce", mode="head",
                 embedding_dim=8, epochs=1, batch_size=4, show_progress=False)  # fmt: skip
    assert result.baseline == {} and result.history[0].recall_at_1 is None
    assert "one distinct caption" in result.extra["recall_not_measurable"]


def test_partial_mode_trains_the_encoders_own_pooling_and_head() -> None:
    """``timm:...`` with ``pooling="gem"`` and ``embedding_dim`` trained in partial mode kept
    GeM's ``p`` and the randomly initialised projection head (``base.pool.*``,
    ``base.head.*``) frozen: only the last block learned, under a fixed random projection."""
    encoder = create_encoder(
        "timm:efficientnet_lite0", pooling="gem", embedding_dim=8,
        pretrained=None, allow_random_weights=True,
    )  # fmt: skip
    wrapped = FineTunedEncoder(encoder)
    wrapped.load()
    names = set(_trainable_names(wrapped.module, "partial", 1))
    assert {"base.pool.p", "base.head.net.0.weight", "base.head.net.2.bias"} <= names
    assert "base.backbone.conv_head.weight" in names
    assert not any(n.startswith("base.backbone.blocks.0.") for n in names)
