"""Metric-learning losses: the triplet loss (with batch mining) and InfoNCE (CLIP's loss).

Both are ``torch.nn.Module`` objects taking embeddings, documented the way
sentence-transformers documents its losses: the formula, the inputs, and when to use it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from langchain_image_embeddings.training.config import Distance, Mining

__all__ = [
    "CLIP_INIT_TEMPERATURE",
    "CLIP_MAX_LOGIT_SCALE",
    "InfoNCELoss",
    "TripletLoss",
    "paired_distances",
    "pairwise_distances",
]


#: CLIP's initial temperature (``tau = 0.07``) and its cap on the logit scale (``1/tau <= 100``).
CLIP_INIT_TEMPERATURE = 0.07
CLIP_MAX_LOGIT_SCALE = 100.0


def pairwise_distances(a: torch.Tensor, b: torch.Tensor, distance: Distance) -> torch.Tensor:
    """Distance matrix ``D[i, j] = d(a_i, b_j)``.

    ``"euclidean"`` is the L2 distance ``||a - b||``; ``"cosine"`` is ``1 - cos(a, b)``.
    The Euclidean distance is clamped at ``1e-6`` so that its gradient stays finite for
    identical vectors (the diagonal of a batch against itself).
    """
    if distance == "cosine":
        return 1.0 - F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    if distance == "euclidean":
        squared = (a * a).sum(-1, keepdim=True) - 2.0 * a @ b.T + (b * b).sum(-1)[None, :]
        return squared.clamp(min=1e-12).sqrt()
    raise ValueError(f"unknown distance {distance!r}; choose 'euclidean' or 'cosine'")


def paired_distances(a: torch.Tensor, b: torch.Tensor, distance: Distance) -> torch.Tensor:
    """Row-wise distances ``d(a_i, b_i)``."""
    if distance == "cosine":
        return 1.0 - F.cosine_similarity(a, b, dim=-1)
    if distance == "euclidean":
        return ((a - b) ** 2).sum(-1).clamp(min=1e-12).sqrt()
    raise ValueError(f"unknown distance {distance!r}; choose 'euclidean' or 'cosine'")


class TripletLoss(nn.Module):
    r"""Triplet loss with online mining over a labelled batch.

    .. math::

        L(a, p, n) = \max\bigl(0,\; d(a, p) - d(a, n) + \alpha\bigr)

    pulls an anchor ``a`` towards a positive ``p`` (same label) until it is closer than any
    negative ``n`` (other label) by the margin ``alpha``. ``d`` is the Euclidean distance
    (use it on L2-normalised vectors, margin ~0.2-0.5) or the cosine distance
    ``1 - cos`` (margin ~0.1-0.3).

    Mining chooses the triplets of a batch of embeddings with labels:

    - ``"all"`` (batch-all): every valid triplet; the loss is averaged over the triplets
      that are still active (loss > 0), so easy triplets do not dilute it.
    - ``"hard"`` (batch-hard, Hermans et al. 2017): per anchor, the farthest positive and
      the closest negative; averaged over anchors. Strongest signal, but sensitive to label
      noise and can collapse early in training.
    - ``"semihard"`` (FaceNet, Schroff et al. 2015): per (anchor, positive) pair, the
      closest negative that is still farther than the positive (``d(a,n) > d(a,p)``); if
      there is none, the farthest negative. Averaged over pairs. The safe default.

    When to use it: labelled images (products, classes, identities) where "same label"
    should mean "near". Batches must contain at least two images of some labels (use a
    P x K sampler, as :func:`~langchain_image_embeddings.training.loop.fit` does). For
    explicit ``(anchor, positive, negative)`` triples use :meth:`forward_triplets`.

    Args:
        margin: The margin ``alpha``.
        distance: ``"euclidean"`` or ``"cosine"``.
        mining: ``"all"``, ``"hard"`` or ``"semihard"``.

    Example:
        .. code-block:: python

            import torch
            from langchain_image_embeddings.training.losses import TripletLoss

            loss_fn = TripletLoss(margin=0.2, distance="cosine", mining="semihard")
            embeddings = torch.randn(8, 16, requires_grad=True)
            labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
            loss = loss_fn(embeddings, labels)
            loss.backward()
    """

    def __init__(
        self, margin: float = 0.2, distance: Distance = "euclidean", mining: Mining = "semihard"
    ) -> None:
        super().__init__()
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"unknown distance {distance!r}; choose 'euclidean' or 'cosine'")
        if mining not in ("all", "hard", "semihard"):
            raise ValueError(f"unknown mining {mining!r}; choose 'all', 'hard' or 'semihard'")
        if not 0 <= margin < math.inf:  # also refuses NaN, which made every loss NaN
            raise ValueError(f"margin must be >= 0 and finite, got {margin}")
        self.margin = float(margin)
        self.distance: Distance = distance
        self.mining: Mining = mining

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance!r}, mining={self.mining!r}"

    def forward_triplets(
        self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> torch.Tensor:
        """Mean loss over explicit triples ``(anchor[i], positive[i], negative[i])``."""
        pos = paired_distances(anchor, positive, self.distance)
        neg = paired_distances(anchor, negative, self.distance)
        return F.relu(pos - neg + self.margin).mean()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mined loss over a batch ``embeddings (N, D)`` with integer ``labels (N,)``.

        Returns zero (still differentiable) when the batch holds no valid triplet.
        """
        if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
            raise ValueError("expected embeddings (N, D) and labels (N,)")
        dist = pairwise_distances(embeddings, embeddings, self.distance)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos_mask = same & ~eye
        neg_mask = ~same
        zero = embeddings.sum() * 0.0
        if self.mining == "all":
            # losses[a, p, n] = d(a, p) - d(a, n) + margin over valid (a, p, n)
            valid = pos_mask[:, :, None] & neg_mask[:, None, :]
            losses = F.relu(dist[:, :, None] - dist[:, None, :] + self.margin)[valid]
            active = losses > 1e-16
            if not bool(active.any()):
                return zero
            return losses[active].sum() / active.sum()
        if self.mining == "hard":
            has = pos_mask.any(1) & neg_mask.any(1)
            if not bool(has.any()):
                return zero
            hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).amax(1)
            hardest_neg = dist.masked_fill(~neg_mask, float("inf")).amin(1)
            return F.relu(hardest_pos - hardest_neg + self.margin)[has].mean()
        # semi-hard: per positive pair (a, p)
        anchors, positives = pos_mask.nonzero(as_tuple=True)
        if len(anchors) == 0 or not bool(neg_mask.any()):
            return zero
        d_ap = dist[anchors, positives]  # (P,)
        d_an = dist[anchors]  # (P, N)
        negatives = neg_mask[anchors]  # (P, N)
        farther = negatives & (d_an > d_ap[:, None])
        closest_farther = d_an.masked_fill(~farther, float("inf")).amin(1)
        farthest = d_an.masked_fill(~negatives, float("-inf")).amax(1)
        chosen = torch.where(farther.any(1), closest_farther, farthest)
        keep = negatives.any(1)
        return F.relu(d_ap - chosen + self.margin)[keep].mean()


class InfoNCELoss(nn.Module):
    r"""Symmetric InfoNCE (CLIP's contrastive loss) with a learnable temperature.

    For a batch of ``N`` pairs ``(v_i, t_i)`` (image and caption, or two views of one
    image), with cosine similarity ``sim`` and temperature ``tau``:

    .. math::

        L_{v \to t} = -\frac{1}{N}\sum_i \log
            \frac{\exp(\mathrm{sim}(v_i, t_i)/\tau)}{\sum_j \exp(\mathrm{sim}(v_i, t_j)/\tau)}

    and ``L = (L_{v->t} + L_{t->v}) / 2`` (``symmetric=True``, as CLIP). Every other item of
    the batch is a negative, so larger batches give a harder task.

    The temperature is learned as ``logit_scale = log(1/tau)``, initialised to
    ``log(1/0.07)`` and clamped so that ``1/tau <= 100``, exactly as CLIP does.

    When to use it: image-text pairs (CLIP-style training, text-to-image search), or
    image-image positives (two augmentations of one image, or two photos of the same
    item) for self-supervised / instance-level retrieval: pass the two views as ``a`` and
    ``b``. Use :class:`TripletLoss` instead when you have class labels and small batches.

    Args:
        temperature: Initial ``tau``.
        learnable: Whether ``tau`` is trained (add the loss's parameters to the optimiser).
        symmetric: Average both directions (``a -> b`` and ``b -> a``).
        max_logit_scale: Upper bound of ``1/tau``.

    Example:
        .. code-block:: python

            import torch
            from langchain_image_embeddings.training.losses import InfoNCELoss

            loss_fn = InfoNCELoss()
            images, texts = torch.randn(4, 32), torch.randn(4, 32)
            loss = loss_fn(images, texts)  # pairs on the diagonal
    """

    def __init__(
        self,
        temperature: float = CLIP_INIT_TEMPERATURE,
        *,
        learnable: bool = True,
        symmetric: bool = True,
        max_logit_scale: float = CLIP_MAX_LOGIT_SCALE,
    ) -> None:
        super().__init__()
        if not 0 < temperature < math.inf:  # NaN trained NaN, inf died in math.log
            raise ValueError(f"temperature must be > 0 and finite, got {temperature}")
        init = torch.tensor(math.log(1.0 / temperature))
        self.logit_scale = nn.Parameter(init, requires_grad=learnable)
        self.symmetric = symmetric
        self.max_log_scale = math.log(max_logit_scale)

    @property
    def temperature(self) -> float:
        """The current (clamped) temperature ``tau``."""
        return float(1.0 / self.scale().detach())

    def scale(self) -> torch.Tensor:
        """``1/tau``, clamped at ``max_logit_scale``."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def clamp_(self) -> None:
        """Clamp the parameter in place (CLIP does this after each optimiser step)."""
        with torch.no_grad():
            self.logit_scale.clamp_(max=self.max_log_scale)

    def logits(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarities ``(N, N)`` between ``a`` and ``b``."""
        return self.scale() * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Loss for pairs ``(a[i], b[i])``; every ``b[j]``, ``j != i``, is a negative."""
        if a.shape != b.shape or a.ndim != 2:
            raise ValueError("expected two (N, D) tensors of the same shape")
        logits = self.logits(a, b)
        targets = torch.arange(len(a), device=a.device)
        loss = F.cross_entropy(logits, targets)
        if self.symmetric:
            loss = (loss + F.cross_entropy(logits.T, targets)) / 2
        return loss
