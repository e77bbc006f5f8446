"""The image-search tool inside an agent loop (``create_agent``) with a fake chat model."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from PIL import Image

from langchain_image_embeddings.retrievers import TextToImageRetriever
from langchain_image_embeddings.tools import image_search_tool
from langchain_image_embeddings.vectorstores import FAISSImageStore
from tests.unit_tests.store_helpers import write_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ToolCallingFake(GenericFakeChatModel):
    """A scripted chat model that accepts tools (create_agent binds them)."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingFake:
        return self


class ChatInputs(BaseCallbackHandler):
    """Records what each chat-model call was given."""

    def __init__(self) -> None:
        self.messages: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.messages.extend(messages)


@pytest.fixture
def store(tiny_clip_embeddings: Any, tmp_path: Path) -> FAISSImageStore:
    store = FAISSImageStore(tiny_clip_embeddings)
    store.add_images(write_folder(tmp_path / "photos", 4))
    return store


def test_the_tool_returns_image_blocks_and_documents(store: FAISSImageStore) -> None:
    tool = image_search_tool(TextToImageRetriever(store=store, k=3), max_side=16)
    call = {"name": "image_search", "args": {"query": "a red square", "k": 2}, "id": "c1"}
    message = tool.invoke({**call, "type": "tool_call"})
    assert isinstance(message, ToolMessage) and message.tool_call_id == "c1"
    blocks = message.content
    assert [b["type"] for b in blocks] == ["text", "text", "image", "text", "image"]  # type: ignore[index]
    assert blocks[0]["text"].startswith("Found 2 result(s):\n[image 1] img0")  # type: ignore[index]
    image = Image.open(io.BytesIO(base64.b64decode(blocks[2]["base64"])))  # type: ignore[index]
    assert max(image.size) == 16
    assert [d.page_content for d in message.artifact] and len(message.artifact) == 2
    text_only = image_search_tool(TextToImageRetriever(store=store), include_images=False)
    only = text_only.invoke({**call, "type": "tool_call"}).content
    assert [b["type"] for b in only] == ["text"]  # type: ignore[index]


def test_the_tool_inside_an_agent_loop(store: FAISSImageStore) -> None:
    agents = pytest.importorskip("langchain.agents")
    tool = image_search_tool(TextToImageRetriever(store=store, k=2), max_side=16)
    model = ToolCallingFake(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[{"name": "image_search", "args": {"query": "red"}, "id": "t1"}],
                ),
                AIMessage(content="The first image is the red one."),
            ]
        )
    )
    seen = ChatInputs()
    agent = agents.create_agent(model, tools=[tool])
    result = agent.invoke(
        {"messages": [{"role": "user", "content": "Find something red"}]},
        config={"callbacks": [seen]},
    )
    messages = result["messages"]
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[-1].content == "The first image is the red one."
    # the model's second turn saw the images the tool found
    second = seen.messages[1]
    tool_message = next(m for m in second if isinstance(m, ToolMessage))
    # (callbacks get the provider-neutral blocks in OpenAI's tracing shape: image_url)
    sent = [b["type"] for b in tool_message.content]  # type: ignore[index,union-attr]
    assert sum(t in ("image", "image_url") for t in sent) == 2
    stored = [b["type"] for b in messages[2].content]
    assert stored.count("image") == 2
    assert len(tool_message.artifact) == 2


async def test_the_tool_async(store: FAISSImageStore) -> None:
    tool = image_search_tool(TextToImageRetriever(store=store, k=1), max_side=8)
    message = await tool.ainvoke(
        {"name": "image_search", "args": {"query": "x"}, "id": "a", "type": "tool_call"}
    )
    assert [b["type"] for b in message.content] == ["text", "text", "image"]
