"""What a multi-vector store asks of its model: pages to patch vectors, queries to tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = ["MultiVectorEmbedder"]


@runtime_checkable
class MultiVectorEmbedder(Protocol):
    """A late-interaction model: one vector per patch of a page, one per query token.

    :class:`~langchain_image_embeddings.encoders.late.LateInteractionEncoder` (ColPali,
    ColQwen2) is one; a test can pass any object with these members.

    Example:
        .. code-block:: python

            encoder = LateInteractionEncoder.from_pretrained("models/colpali")
            pages = encoder.embed_pages([page_image])     # [array (patches, 128)]
            tokens = encoder.embed_query("revenue 2023")  # array (tokens, 128)
    """

    @property
    def model_id(self) -> str:
        """Names the model and its weights (recorded in the store and in content ids)."""
        ...

    @property
    def dim(self) -> int:
        """Dimension of the patch and token vectors."""
        ...

    def embed_pages(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """One ``(patches, dim)`` matrix of unit rows per page image."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """A ``(tokens, dim)`` matrix of unit rows for a text query."""
        ...
