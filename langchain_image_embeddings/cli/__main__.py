"""``python -m langchain_image_embeddings.cli``: the ``imgemb`` command."""

from __future__ import annotations

import sys

from langchain_image_embeddings.cli import main

sys.exit(main())
