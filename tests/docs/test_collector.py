"""The docs collector itself: parser, markers, substitution table, ids (fast, no models)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.docs import offline
from tests.docs.markdown import Block, find_blocks
from tests.docs.test_docs_examples import BLOCKS, block_id, preamble_names, skip_reason

SAMPLE = """# Title

```python
x = 1
```

<!-- docs-test: skip reason="needs a vision LLM API key" -->

```bash
imgemb search "a" \\
    --store faiss:index   # trailing comment
# a comment line
pip install foo
```

```console
$ imgemb info --store faiss:index
index: 3 vectors
```

<!-- docs-test: exit=5 -->
```sh
imgemb info --store faiss:missing
```

```json
{"not": "collected"}
```

```
plain text, not collected
```
"""


def test_parser_markers_commands(tmp_path: Path) -> None:
    md = tmp_path / "doc.md"
    md.write_text(SAMPLE)
    blocks = find_blocks(md, tmp_path)
    assert [(b.label, b.lang) for b in blocks] == [
        ("doc.md:3-python", "python"),
        ("doc.md:9-bash", "shell"),
        ("doc.md:16-console", "shell"),
        ("doc.md:22-sh", "shell"),
    ]
    assert blocks[0].code == "x = 1\n" and blocks[0].code_line == 4
    assert blocks[1].options == {"skip": "", "reason": "needs a vision LLM API key"}
    commands = blocks[1].commands()
    assert [c.text for c in commands] == [
        'imgemb search "a" --store faiss:index   # trailing comment',
        "pip install foo",
    ]
    assert [c.line for c in commands] == [10, 13]
    assert [c.text for c in blocks[2].commands()] == ["imgemb info --store faiss:index"]
    assert blocks[3].options == {"exit": "5"}
    assert "skip: needs a vision LLM API key" in block_id(blocks[1])


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("e = ImageEmbeddings()", "default", 'ImageEmbeddings("open_clip:lie-tiny-clip"'),
        (
            "w = ImageEmbeddings(load_options=o)",
            "default",
            "model_kwargs={\"pretrained\": 'CKPT'}, load_options=o)",
        ),
        ('e = ImageEmbeddings("open_clip:ViT-B-32")', "open_clip:ViT-B-32", "lie-tiny-clip"),
        (
            'e = ImageEmbeddings("open_clip:ViT-B-32", model_kwargs={"pretrained": "/m/x.pt"})',
            "open_clip:ViT-B-32",
            "{\"pretrained\": 'CKPT'})",
        ),
        (
            'create_encoder("open_clip:ViT-B-32", pretrained="laion2b_s34b_b79k")',
            "create_encoder",
            "create_encoder(\"open_clip:lie-tiny-clip\", pretrained='CKPT')",
        ),
    ],
)
def test_python_substitutions(source: str, name: str, expected: str) -> None:
    applied = [s for s in offline.SUBSTITUTIONS if "python" in s.langs and s.matches(source)]
    assert len(applied) == 1 and name in applied[0].name
    out = applied[0].apply(source, {"tiny_clip_checkpoint": repr("CKPT")})
    assert expected in out
    ast.parse(out)


def test_python_substitution_leaves_other_models_alone() -> None:
    for source in (
        'ImageEmbeddings("timm:efficientnet_lite0")',
        "ImageEmbeddings(encoder, device='cpu')",
        'ImageEmbeddings.from_pretrained("m")',
        'ImageEmbeddings(model="timm:x")',
    ):
        assert not [s for s in offline.SUBSTITUTIONS if s.matches(source)], source


def test_shell_substitutions() -> None:
    values = {"tiny_clip_checkpoint": "/ck.safetensors", "chroma_port": "4242"}
    shell = [s for s in offline.SUBSTITUTIONS if "shell" in s.langs]

    def run(text: str) -> str:
        for s in shell:
            if s.matches(text):
                text = s.apply(text, values)
        return text

    assert (
        run("imgemb index p --model open_clip:ViT-B-32 --pretrained /models/vit-b-32.safetensors")
        == "imgemb index p --model open_clip:lie-tiny-clip --pretrained /ck.safetensors"
    )
    assert run("imgemb finetune --model open_clip:ViT-B-32 --loss infonce").endswith(
        "--pretrained /ck.safetensors --loss infonce"
    )
    assert run("imgemb search q --pretrained /models/vit-b-32.safetensors -k 5") == (
        "imgemb search q --pretrained /ck.safetensors -k 5"
    )
    assert run("--store chroma+http://127.0.0.1:8000/images") == (
        "--store chroma+http://127.0.0.1:4242/images"
    )
    assert run("--model timm:efficientnet_lite0") == "--model timm:efficientnet_lite0"


def test_skip_rules() -> None:
    assert skip_reason('pip install "langchain-image-embeddings[all]"') == "installs packages"
    assert skip_reason("make test") and skip_reason("make demo   # comment")
    assert skip_reason("imgemb index photos") is None


def test_preamble_names_are_free_names_only() -> None:
    code = "pil_image.size\npng_bytes = b''\nprint(png_bytes)\n"
    block = Block(Path("x.md"), "x.md", "python", "python", 1, code, 2)
    assert preamble_names(block) == ["pil_image", "png_bytes"]  # read somewhere: provided
    assert set(offline.PREAMBLE) == {"pil_image", "png_bytes", "numpy_array", "vision_llm"}


def test_every_skip_in_the_docs_has_a_reason() -> None:
    for block in BLOCKS:
        bid = block_id(block)
        if "skip" in block.options:
            assert block.options.get("reason"), bid
        if block.lang == "shell":
            for command in block.commands():
                if skip_reason(command.text):
                    assert "skip " in bid, bid
