"""MaxSimReranker: a late-interaction second stage behind a CLIP store, in LangChain's chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from langchain_image_embeddings.rerankers import MaxSimReranker
from tests.unit_tests.test_multivector_store import ColourEmbedder, page_image

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "grey": (128, 128, 128)}


@pytest.fixture
def pages(tmp_path: Path) -> dict[str, str]:
    return {name: page_image(tmp_path / f"{name}.png", rgb) for name, rgb in COLOURS.items()}


@pytest.mark.slow  # builds the tiny CLIP (session fixture): ~10 s on a quiet machine
def test_clip_first_stage_reranked_by_maxsim_in_a_compression_retriever(
    tiny_clip_embeddings: Any, pages: dict[str, str], tmp_path: Path
) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    from langchain_image_embeddings.vectorstores import FAISSImageStore

    clip_store = FAISSImageStore(tiny_clip_embeddings, tmp_path / "clip")
    clip_store.add_images(list(pages.values()))
    first_stage = clip_store.as_retriever(search_kwargs={"k": 4})
    encoder = ColourEmbedder()
    retriever = ContextualCompressionRetriever(
        base_compressor=MaxSimReranker(encoder=encoder, top_n=2), base_retriever=first_stage
    )
    for colour in ("red", "blue", "green"):
        hits = retriever.invoke(colour)
        assert len(hits) == 2
        assert hits[0].metadata["source"] == pages[colour]
        scores = [d.metadata["relevance_score"] for d in hits]
        assert 0.0 <= scores[1] <= scores[0] <= 1.0
    assert encoder.calls == 4  # each page embedded once, then served from the cache


def test_unreadable_documents_are_ranked_last_with_their_code(
    pages: dict[str, str], tmp_path: Path
) -> None:
    docs = [
        Document(page_content=str(tmp_path / "gone.png"), metadata={"n": 0}),
        Document(page_content=pages["grey"], metadata={"n": 1}),
        Document(page_content=pages["green"], metadata={"n": 2}),
    ]
    out = MaxSimReranker(encoder=ColourEmbedder(), top_n=3).compress_documents(docs, "green")
    assert [d.metadata["n"] for d in out] == [2, 1, 0]
    assert out[2].metadata["rerank_error"] == "not_found"
    assert "relevance_score" not in out[2].metadata
    assert MaxSimReranker(encoder=ColourEmbedder()).compress_documents([], "red") == []


def test_same_bytes_are_embedded_once_and_cache_is_bounded(pages: dict[str, str]) -> None:
    encoder = ColourEmbedder()
    reranker = MaxSimReranker(encoder=encoder, top_n=4, cache_size=1)
    docs = [Document(page_content=pages["red"]), Document(page_content=pages["red"])]
    out = reranker.compress_documents(docs, "red")
    assert len(out) == 2 and encoder.calls == 1
    reranker.compress_documents([Document(page_content=pages["blue"])], "red")
    reranker.compress_documents([Document(page_content=pages["red"])], "red")
    assert encoder.calls == 3  # the cache kept only the last page
