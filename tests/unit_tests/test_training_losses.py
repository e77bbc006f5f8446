"""Triplet and InfoNCE losses against values computed by hand, plus gradient checks."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from langchain_image_embeddings.training.losses import (  # noqa: E402
    InfoNCELoss,
    TripletLoss,
    pairwise_distances,
)

LABELS = torch.tensor([0, 0, 1, 1])
# Points on a line: d01=1, d02=3, d03=6, d12=2, d13=5, d23=3.
LINE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [6.0, 0.0]])
# Unit vectors: cosine distances d01=0.4, d02=1, d03=2, d12=0.2, d13=1.6, d23=1.
UNIT = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])


def test_pairwise_distances_by_hand() -> None:
    euclid = pairwise_distances(LINE, LINE, "euclidean")
    assert euclid[0, 3].item() == pytest.approx(6.0)
    assert euclid[1, 2].item() == pytest.approx(2.0)
    assert euclid.diagonal().abs().max().item() < 1e-5
    cosine = pairwise_distances(UNIT, UNIT, "cosine")
    assert cosine[0, 1].item() == pytest.approx(0.4)
    assert cosine[1, 3].item() == pytest.approx(1.6)


@pytest.mark.parametrize(
    ("mining", "expected"),
    [
        # active triplets (2,3,0): 3-3+1=1 and (2,3,1): 3-2+1=2 -> mean over active = 1.5
        ("all", 1.5),
        # per anchor hardest pos / closest neg: only anchor 2 is active: 3-2+1=2 -> 2/4
        ("hard", 0.5),
        # per positive pair: (2,3) has no negative farther than 3 -> farthest (3): 1 -> 1/4
        ("semihard", 0.25),
    ],
)
def test_triplet_euclidean_mining_by_hand(mining: str, expected: float) -> None:
    loss = TripletLoss(margin=1.0, distance="euclidean", mining=mining)  # type: ignore[arg-type]
    assert loss(LINE, LABELS).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("mining", "expected"),
    [
        # active: (1,0,2)=0.7, (2,3,0)=0.5, (2,3,1)=1.3 -> 2.5/3
        ("all", 2.5 / 3),
        # anchors 1: 0.4-0.2+0.5=0.7, 2: 1-0.2+0.5=1.3 -> 2.0/4
        ("hard", 0.5),
        # only (2,3): no negative farther than 1 -> farthest (1): 0.5 -> 0.5/4
        ("semihard", 0.125),
    ],
)
def test_triplet_cosine_mining_by_hand(mining: str, expected: float) -> None:
    loss = TripletLoss(margin=0.5, distance="cosine", mining=mining)  # type: ignore[arg-type]
    assert loss(UNIT, LABELS).item() == pytest.approx(expected, abs=1e-5)
    # Cosine distance ignores vector length.
    assert loss(UNIT * 3.0, LABELS).item() == pytest.approx(expected, abs=1e-5)


def test_explicit_triplets_by_hand() -> None:
    anchor = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    positive = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    negative = torch.tensor([[0.0, 2.0], [0.0, 1.0]])
    loss = TripletLoss(margin=0.5, distance="euclidean")
    # relu(1 - 2 + 0.5) = 0 and relu(3 - 1 + 0.5) = 2.5 -> mean 1.25
    assert loss.forward_triplets(anchor, positive, negative).item() == pytest.approx(1.25)


def test_triplet_without_valid_triplets_is_zero_and_differentiable() -> None:
    x = torch.randn(4, 3, requires_grad=True)
    for mining in ("all", "hard", "semihard"):
        loss = TripletLoss(mining=mining)(x, torch.zeros(4, dtype=torch.long))  # type: ignore[arg-type]
        assert loss.item() == 0.0
        loss.backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


def test_triplet_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="distance"):
        TripletLoss(distance="manhattan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mining"):
        TripletLoss(mining="random")  # type: ignore[arg-type]


def _ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_infonce_symmetric_by_hand_at_known_temperature() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # tau = 0.5: logits = 2 * cos = [[2, 1.2], [0, 1.6]]
    forward = (_ce([2.0, 1.2], 0) + _ce([0.0, 1.6], 1)) / 2
    backward = (_ce([2.0, 0.0], 0) + _ce([1.2, 1.6], 1)) / 2
    sym = InfoNCELoss(temperature=0.5, learnable=False)
    assert sym(a, b).item() == pytest.approx((forward + backward) / 2, abs=1e-5)
    one_way = InfoNCELoss(temperature=0.5, learnable=False, symmetric=False)
    assert one_way(a, b).item() == pytest.approx(forward, abs=1e-5)
    # Inputs are normalised: scaling does not change the loss.
    assert sym(a * 5, b * 0.1).item() == pytest.approx((forward + backward) / 2, abs=1e-5)


def test_infonce_temperature_init_and_clip_clamp() -> None:
    loss = InfoNCELoss()
    assert loss.logit_scale.requires_grad
    assert loss.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert loss.temperature == pytest.approx(0.07)
    with torch.no_grad():
        loss.logit_scale.fill_(10.0)
    assert loss.scale().item() == pytest.approx(100.0)  # clamped in the forward
    loss.clamp_()
    assert loss.logit_scale.item() == pytest.approx(math.log(100.0))
    assert not InfoNCELoss(learnable=False).logit_scale.requires_grad


def test_gradcheck_triplet_and_infonce() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, dtype=torch.double, generator=gen, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    for distance in ("euclidean", "cosine"):
        for mining in ("all", "hard", "semihard"):
            loss = TripletLoss(margin=1.0, distance=distance, mining=mining)  # type: ignore[arg-type]
            assert torch.autograd.gradcheck(lambda t, f=loss: f(t, labels), (x,))
    y = torch.randn(6, 4, dtype=torch.double, generator=gen, requires_grad=True)
    info = InfoNCELoss(temperature=0.3, learnable=False).double()
    assert torch.autograd.gradcheck(info, (x, y))


def test_triplet_training_separates_a_toy_problem() -> None:
    torch.manual_seed(0)
    centers = torch.randn(4, 8) * 0.5
    labels = torch.arange(4).repeat_interleave(8)
    data = centers[labels] + torch.randn(32, 8)
    projection = torch.nn.Linear(8, 8)
    loss_fn = TripletLoss(margin=0.5, distance="euclidean", mining="semihard")
    optimizer = torch.optim.Adam(projection.parameters(), lr=0.05)
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = loss_fn(projection(data), labels)
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
    assert first is not None and loss.item() < first / 2


def test_infonce_training_aligns_two_views_and_learns_temperature() -> None:
    torch.manual_seed(0)
    a = torch.randn(32, 8)
    b = a @ torch.linalg.qr(torch.randn(8, 8))[0] + 0.05 * torch.randn(32, 8)
    projection = torch.nn.Linear(8, 8)
    loss_fn = InfoNCELoss()
    optimizer = torch.optim.Adam([*projection.parameters(), *loss_fn.parameters()], lr=0.05)
    start_scale = loss_fn.logit_scale.item()
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = loss_fn(projection(a), b)
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
        loss_fn.clamp_()
    assert first is not None and loss.item() < first / 4
    assert loss_fn.logit_scale.item() != start_scale  # the temperature is learned
    assert loss_fn.logit_scale.item() <= math.log(100.0) + 1e-6
