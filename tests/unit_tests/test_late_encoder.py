"""Late-interaction encoders: a tiny random ColPali saved to a folder, loaded, run end to end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from langchain_image_embeddings.encoders.late import (  # noqa: E402
    LateInteractionEncoder,
    late_model_classes,
)
from langchain_image_embeddings.errors import EncoderError, MissingDependencyError  # noqa: E402
from langchain_image_embeddings.vectorstores import MultiVectorImageStore  # noqa: E402
from langchain_image_embeddings.vectorstores.multivector import maxsim  # noqa: E402

# Importing transformers and building the model cost ~15 s on a quiet 2-core machine.
pytestmark = pytest.mark.slow

WORDS = ["Question", ":", "Describe", "the", "image", ".", "revenue", "chart", "table", "2023"]


def save_tiny_colpali(folder: Path) -> Path:
    """A random-weight ColPali (one layer per tower, 28-pixel images, 16-dim vectors) and a
    tiny word-level tokenizer, saved like a real checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        ColPaliConfig,
        ColPaliForRetrieval,
        ColPaliProcessor,
        GemmaConfig,
        PaliGemmaConfig,
        PreTrainedTokenizerFast,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )
    images = SiglipImageProcessor(size={"height": 28, "width": 28})
    images.image_seq_length = 4  # (28 / 14) ** 2 patches
    processor = ColPaliProcessor(image_processor=images, tokenizer=fast)
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    text = GemmaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        pad_token_id=0,
    )
    vlm = PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        projection_dim=32,
        image_token_index=processor.image_token_id,
        vocab_size=len(fast),
    )
    torch.manual_seed(0)
    ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm, embedding_dim=16)).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def colpali_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_colpali(tmp_path_factory.mktemp("tiny-colpali"))


def chart_page(title: str, bars: list[int]) -> Image.Image:
    """A page-like image: a title line and a bar chart."""
    page = Image.new("RGB", (200, 260), "white")
    draw = ImageDraw.Draw(page)
    draw.text((10, 10), title, fill="black")
    for n, height in enumerate(bars):
        draw.rectangle((20 + 30 * n, 240 - height, 40 + 30 * n, 240), fill=(40 * n, 90, 200))
    return page


def test_pages_and_queries_embed_as_unit_token_matrices(colpali_dir: Path) -> None:
    encoder = LateInteractionEncoder.from_pretrained(colpali_dir, batch_size=2)
    assert encoder.dim == 16
    assert encoder.model_id.startswith("colpali:") and encoder.model_id.endswith(
        encoder.model_id.rsplit("@", 1)[1]
    )
    pages = encoder.embed_pages([chart_page("revenue", [50, 90]), chart_page("table", [10])] * 2)
    assert len(pages) == 4
    for page in pages:
        # 4 image patches + the prompt tokens, one unit vector each
        assert page.shape[1] == 16 and page.shape[0] > 4 and page.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(page, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(pages[0], pages[2])  # deterministic, batch-independent
    assert not np.allclose(pages[0], pages[1])
    query = encoder.embed_query("revenue chart 2023")
    assert query.shape[1] == 16 and len(query) >= 3
    np.testing.assert_allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)


def test_maxsim_matches_the_processors_reference_scores(colpali_dir: Path) -> None:
    encoder = LateInteractionEncoder.from_pretrained(colpali_dir)
    pages = encoder.embed_pages([chart_page("revenue", [50, 90]), chart_page("table", [10])])
    queries = encoder.embed_queries(["revenue chart", "table"])
    reference = encoder.processor.score_retrieval(
        [torch.from_numpy(q) for q in queries], [torch.from_numpy(p) for p in pages]
    )
    ours = np.array([[maxsim(q, p) for p in pages] for q in queries])
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-4, atol=1e-4)


def test_reloading_the_folder_gives_the_same_vectors(colpali_dir: Path) -> None:
    page = chart_page("revenue", [30, 60, 90])
    first = LateInteractionEncoder.from_pretrained(colpali_dir).embed_pages([page])[0]
    second = LateInteractionEncoder.from_pretrained(colpali_dir).embed_pages([page])[0]
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_index_pages_and_a_pdf_page_then_query(colpali_dir: Path, tmp_path: Path) -> None:
    pdfium = pytest.importorskip("pypdfium2")
    paths = []
    for n, (title, bars) in enumerate([("revenue", [40, 80]), ("table", [20]), ("chart", [90])]):
        path = tmp_path / f"page{n}.png"
        chart_page(title, bars).save(path)
        paths.append(str(path))
    # A PDF made in the test, its page rendered by pypdfium2 like a document loader would.
    chart_page("2023 revenue", [70, 30, 50]).save(tmp_path / "report.pdf")
    pdf = pdfium.PdfDocument(str(tmp_path / "report.pdf"))
    pdf[0].render(scale=1).to_pil().save(tmp_path / "report-page1.png")
    pdf.close()
    paths.append(str(tmp_path / "report-page1.png"))

    encoder = LateInteractionEncoder.from_pretrained(colpali_dir)
    store = MultiVectorImageStore(encoder, tmp_path / "pages")
    result = store.add_images(paths)
    assert len(result.added) == 4 and not result.failures
    assert store.add_images(paths[:1]).skipped == result.added[:1]
    hits = store.similarity_search_with_relevance_scores("revenue chart", k=4)
    assert sorted(d.metadata["source"] for d, _ in hits) == sorted(paths)
    assert all(0.0 <= s <= 1.0 for _, s in hits)
    store.close()
    reopened = MultiVectorImageStore(
        LateInteractionEncoder.from_pretrained(colpali_dir), tmp_path / "pages"
    )
    again = reopened.similarity_search_with_relevance_scores("revenue chart", k=4)
    assert [d.id for d, _ in again] == [d.id for d, _ in hits]
    np.testing.assert_allclose([s for _, s in again], [s for _, s in hits], atol=1e-3)


def test_a_folder_without_a_late_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match=r"no config\.json"):
        LateInteractionEncoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(EncoderError, match=r"'bert'.*colpali"):
        LateInteractionEncoder.from_pretrained(tmp_path)


def test_missing_transformers_names_the_late_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"langchain-image-embeddings\[late\]"):
        late_model_classes("colpali")


def test_colqwen2_classes_are_known() -> None:
    model: Any
    model, processor = late_model_classes("colqwen2")
    assert model.__name__ == "ColQwen2ForRetrieval" and processor.__name__ == "ColQwen2Processor"


def save_tiny_colqwen2(folder: Path) -> Path:
    """A random-weight ColQwen2 (one layer per tower, 56-pixel images, 16-dim vectors) with a
    word-level tokenizer holding Qwen2-VL's special tokens, saved like a real checkpoint."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        AddedToken,
        ColQwen2Config,
        ColQwen2ForRetrieval,
        ColQwen2Processor,
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLImageProcessor,
    )

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>"]
    special += ["<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    words = ["<pad>", "<unk>", *special, "user", "Describe", "the", "image", ".", "Query", ":"]
    vocab = {w: i for i, w in enumerate([*words, "revenue", "chart"])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", eos_token=special[0]
    )
    fast.add_special_tokens(
        {
            "additional_special_tokens": [
                AddedToken(t, special=True, normalized=False) for t in special
            ]
        }
    )
    images = Qwen2VLImageProcessor(
        min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    processor = ColQwen2Processor(image_processor=images, tokenizer=fast)
    size = len(fast)
    text = {
        "vocab_size": size,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "bos_token_id": None,
        "eos_token_id": vocab["<|endoftext|>"],
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
    }
    vision = {
        "depth": 1,
        "embed_dim": 32,
        "hidden_size": 32,
        "num_heads": 2,
        "mlp_ratio": 1,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    vlm = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=processor.image_token_id,
        vision_start_token_id=vocab["<|vision_start|>"],
        vocab_size=size,
    )
    torch.manual_seed(0)
    ColQwen2ForRetrieval(ColQwen2Config(vlm_config=vlm, embedding_dim=16)).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_a_tiny_colqwen2_loads_and_searches_through_the_same_path(tmp_path: Path) -> None:
    encoder = LateInteractionEncoder.from_pretrained(save_tiny_colqwen2(tmp_path / "colqwen2"))
    assert encoder.model_id.startswith("colqwen2:") and encoder.dim == 16
    pages = encoder.embed_pages([chart_page("revenue", [40, 80]), chart_page("chart", [90])])
    for page in pages:
        assert page.shape[1] == 16 and len(page) > 4
        np.testing.assert_allclose(np.linalg.norm(page, axis=1), 1.0, atol=1e-5)
    store = MultiVectorImageStore(encoder)
    paths = []
    for n, page_image in enumerate([chart_page("revenue", [40, 80]), chart_page("chart", [9])]):
        page_image.save(tmp_path / f"q{n}.png")
        paths.append(str(tmp_path / f"q{n}.png"))
    assert len(store.add_images(paths).added) == 2
    hits = store.similarity_search("revenue chart", k=2)
    assert sorted(d.metadata["source"] for d in hits) == sorted(paths)
