"""Late-interaction (multi-vector) encoders: ColPali and ColQwen2 from a local folder.

Extra ``[late]`` (``transformers``); see ``docs/late-interaction.md``.
"""

from __future__ import annotations

from langchain_image_embeddings.encoders.late._colpali import (
    LATE_INSTALL,
    LateInteractionEncoder,
    late_model_classes,
)

__all__ = ["LATE_INSTALL", "LateInteractionEncoder", "late_model_classes"]
