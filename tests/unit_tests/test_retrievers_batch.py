"""Retrievers' ``batch`` / ``abatch``: all queries embedded together and searched with one
batched store call, with the same results (and callback runs) as one ``invoke`` per query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document

from langchain_image_embeddings.retrievers import ImageToImageRetriever, TextToImageRetriever
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.store_helpers import write_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch-imgs")
    write_folder(root, 8)
    return root


@pytest.fixture
def store(tiny_clip_embeddings: Any, folder: Path) -> FAISSImageStore:
    store = FAISSImageStore(tiny_clip_embeddings)
    store.add_images(sorted(folder.iterdir()))
    return store


class _Calls:
    """Counts calls of methods, patched on the class for the test (``ImageEmbeddings`` is
    a pydantic model: its instances take no new attributes)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, obj: Any, *names: str) -> None:
        self.count = dict.fromkeys(names, 0)
        for name in names:
            original = getattr(type(obj), name)

            def wrapped(
                me: Any, *args: Any, _name: str = name, _f: Any = original, **kw: Any
            ) -> Any:
                if me is obj:
                    self.count[_name] += 1
                return _f(me, *args, **kw)

            monkeypatch.setattr(type(obj), name, wrapped)


def _ids(results: list[list[Document]]) -> list[list[tuple[Any, float]]]:
    return [[(d.id, round(float(d.metadata.get("score", -1)), 5)) for d in r] for r in results]


def test_text_batch_embeds_once_searches_once_and_equals_invoke(
    store: FAISSImageStore, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = TextToImageRetriever(store=store, k=3)
    queries = ["a red square", "a blue circle", str(folder / "img02.png"), "green"]
    one_by_one = [retriever.invoke(q) for q in queries]
    model = store.image_embeddings
    embeds = _Calls(monkeypatch, model, "embed_documents", "embed_images")
    searches = _Calls(
        monkeypatch,
        store,
        "similarity_search_with_score_by_vector",
        "similarity_search_with_score_by_vectors",
    )
    batched = retriever.batch(queries)
    assert _ids(batched) == _ids(one_by_one)
    assert batched[2][0].page_content.endswith("img02.png")  # the path was read as an image
    # the three texts in one text-tower call, the image address in one image call
    assert embeds.count == {"embed_documents": 1, "embed_images": 1}
    assert searches.count == {
        "similarity_search_with_score_by_vector": 0,
        "similarity_search_with_score_by_vectors": 1,
    }


def test_image_batch_and_abatch_equal_invoke_with_options(
    store: FAISSImageStore, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = ImageToImageRetriever(store=store, k=2, score_threshold=0.1)
    queries = [str(folder / f"img0{i}.png") for i in (1, 4, 6)]
    one_by_one = [retriever.invoke(q, k=4) for q in queries]
    searches = _Calls(monkeypatch, store, "similarity_search_with_score_by_vectors")
    embeds = _Calls(monkeypatch, store.image_embeddings, "embed_images")
    assert _ids(retriever.batch(queries, k=4)) == _ids(one_by_one)
    assert searches.count["similarity_search_with_score_by_vectors"] == 1
    assert embeds.count["embed_images"] == 1
    assert [len(r) for r in one_by_one] == [4, 4, 4]


async def test_abatch_searches_once_and_equals_invoke(
    store: FAISSImageStore, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retriever = ImageToImageRetriever(store=store, k=3)
    queries = [str(folder / f"img0{i}.png") for i in (0, 3, 5, 7)]
    one_by_one = [retriever.invoke(q) for q in queries]
    searches = _Calls(monkeypatch, store, "similarity_search_with_score_by_vectors")
    assert _ids(await retriever.abatch(queries)) == _ids(one_by_one)
    assert searches.count["similarity_search_with_score_by_vectors"] == 1


def test_mmr_and_a_store_without_batched_search_fall_back_per_query(
    store: FAISSImageStore, folder: Path, tiny_clip_embeddings: Any
) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_image_embeddings import ImageDocumentEmbeddings

    queries = ["a red square", str(folder / "img05.png")]
    mmr = TextToImageRetriever(store=store, k=3, search_type="mmr")
    assert _ids(mmr.batch(queries)) == _ids([mmr.invoke(q) for q in queries])
    stock = InMemoryVectorStore(ImageDocumentEmbeddings(tiny_clip_embeddings))
    stock.add_documents(
        [Document(page_content=str(p), id=p.name) for p in sorted(folder.iterdir())]
    )
    images = ImageToImageRetriever(store=stock, k=2)
    batched = images.batch([str(folder / "img01.png"), str(folder / "img07.png")])
    assert batched[0][0].id == "img01.png"
    assert _ids(batched) == _ids(
        [images.invoke(q) for q in (str(folder / "img01.png"), str(folder / "img07.png"))]
    )


class _Runs(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_retriever_start(self, serialized: Any, query: Any, **kwargs: Any) -> None:
        self.events.append(("start", (query, kwargs.get("name"), kwargs.get("tags"))))

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        self.events.append(("end", [d.id for d in documents]))

    def on_retriever_error(self, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("error", type(error).__name__))


def test_each_query_is_its_own_run_with_its_own_config_and_error(
    store: FAISSImageStore, folder: Path
) -> None:
    retriever = ImageToImageRetriever(store=store, k=2)
    good, missing = str(folder / "img03.png"), str(folder / "missing.png")
    handlers = [_Runs(), _Runs()]
    configs: list[Any] = [
        {"callbacks": [handlers[0]], "run_name": "first", "tags": ["a"]},
        {"callbacks": [handlers[1]], "run_name": "second", "tags": ["b"]},
    ]
    results = retriever.batch([good, missing], configs, return_exceptions=True)
    assert [d.id for d in results[0]] == [d.id for d in retriever.invoke(good)]
    assert isinstance(results[1], Exception) and "missing.png" in str(results[1])
    assert handlers[0].events == [
        ("start", (good, "first", ["a"])),
        ("end", [d.id for d in results[0]]),
    ]
    assert handlers[1].events[0] == ("start", (missing, "second", ["b"]))
    assert handlers[1].events[1][0] == "error"
    with pytest.raises(type(results[1])):
        retriever.batch([good, missing])
    assert retriever.batch([]) == []
