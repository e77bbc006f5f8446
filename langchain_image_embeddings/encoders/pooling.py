"""Pooling and projection modules: explicit, composable pieces after a backbone.

Pooling turns a feature map ``(N, C, H, W)`` or a token sequence ``(N, L, C)`` into one
vector per image, as sentence-transformers' ``Pooling`` module does for tokens.
"""

from __future__ import annotations

from typing import Final

import torch
from torch import nn

__all__ = [
    "POOLINGS",
    "AttentionPool",
    "AvgPool",
    "ClsPool",
    "GeMPool",
    "MaxPool",
    "ProjectionHead",
    "create_pooling",
]


#: Pooling names accepted by the backends.
POOLINGS: Final[tuple[str, ...]] = ("avg", "max", "gem", "attention", "cls")


class AvgPool(nn.Module):
    """Mean over spatial positions (feature maps) or over non-prefix tokens (sequences).

    Example:
        >>> AvgPool()(torch.ones(2, 8, 3, 3)).shape
        torch.Size([2, 8])
    """

    def __init__(self, num_prefix_tokens: int = 0) -> None:
        super().__init__()
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return x.mean(dim=(2, 3))
        return x[:, self.num_prefix_tokens :].mean(dim=1)


class MaxPool(nn.Module):
    """Maximum over spatial positions or non-prefix tokens.

    Example:
        >>> MaxPool()(torch.ones(2, 8, 3, 3)).shape
        torch.Size([2, 8])
    """

    def __init__(self, num_prefix_tokens: int = 0) -> None:
        super().__init__()
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return x.amax(dim=(2, 3))
        return x[:, self.num_prefix_tokens :].amax(dim=1)


class GeMPool(nn.Module):
    """Generalised-mean pooling (Radenović et al.): ``(mean(x^p))^(1/p)`` with learnable ``p``.

    ``p = 1`` is average pooling, ``p -> inf`` max pooling; ``p = 3`` is the usual start
    for instance retrieval.

    Example:
        >>> GeMPool(p=3.0)(torch.ones(2, 8, 3, 3)).shape
        torch.Size([2, 8])
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6, num_prefix_tokens: int = 0) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x[:, self.num_prefix_tokens :].transpose(1, 2).unsqueeze(-1)
        pooled = x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3))
        return pooled.pow(1.0 / self.p)


class AttentionPool(nn.Module):
    """Attention pooling: a learned query attends over positions/tokens (as in CLIP's RN50).

    The query is trained with the rest of the head (see the training extra); untrained it
    is a random weighting, so use it for fine-tuning, not for zero-shot retrieval.

    Example:
        >>> AttentionPool(8, num_heads=2)(torch.ones(2, 8, 3, 3)).shape
        torch.Size([2, 8])
    """

    def __init__(self, dim: int, num_heads: int = 8) -> None:
        super().__init__()
        heads = num_heads if dim % num_heads == 0 else 1
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            x = x.flatten(2).transpose(1, 2)
        query = self.query.expand(x.shape[0], -1, -1)
        out, _ = self.attn(query, x, x, need_weights=False)
        result: torch.Tensor = out[:, 0]
        return result


class ClsPool(nn.Module):
    """The first (class) token of a transformer's sequence.

    Example:
        >>> ClsPool()(torch.ones(2, 5, 8)).shape
        torch.Size([2, 8])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError("CLS pooling needs a token sequence (N, L, C), not a feature map")
        return x[:, 0]


def create_pooling(name: str, dim: int, num_prefix_tokens: int = 0) -> nn.Module:
    """Build a pooling module by name (one of :data:`POOLINGS`)."""
    if name == "avg":
        return AvgPool(num_prefix_tokens)
    if name == "max":
        return MaxPool(num_prefix_tokens)
    if name == "gem":
        return GeMPool(num_prefix_tokens=num_prefix_tokens)
    if name == "attention":
        return AttentionPool(dim)
    if name == "cls":
        return ClsPool()
    raise ValueError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")


class ProjectionHead(nn.Module):
    """The seed's projection head: ``Linear -> ReLU -> Linear`` to ``embedding_dim``.

    Example:
        >>> ProjectionHead(1280, 256)(torch.ones(4, 1280)).shape
        torch.Size([4, 256])
    """

    def __init__(self, in_dim: int, embedding_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden = hidden_dim or embedding_dim
        self.in_dim = in_dim
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embedding_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]
