"""``ImageEmbeddings``: the LangChain face of a local image encoder."""

from __future__ import annotations

import os
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from langchain_image_embeddings._optional import require_torch
from langchain_image_embeddings.devices import resolve_device
from langchain_image_embeddings.encoders.base import ImageEncoder
from langchain_image_embeddings.encoders.runtimes import EmbeddingPrecision, RuntimeChoice
from langchain_image_embeddings.errors import ImageLoadError
from langchain_image_embeddings.images._load import ImageInput
from langchain_image_embeddings.images._options import IMAGE_SUFFIXES, ImageLoadOptions, describe
from langchain_image_embeddings.images._source import ImageSource
from langchain_image_embeddings.pipeline._report import PipelineProgress
from langchain_image_embeddings.pipeline._steps import finish
from langchain_image_embeddings.pipeline._stream import ImagePipeline

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from langchain_image_embeddings.devices import Precision
    from langchain_image_embeddings.encoders.runtimes import RuntimeReport

__all__ = ["DEFAULT_MODEL", "EmbeddingResult", "ImageEmbeddings", "looks_like_image_uri"]

#: The library's default model: CLIP ViT-B/32 trained on LAION-2B (images and text, 512-d).
DEFAULT_MODEL = "open_clip:ViT-B-32"

#: Texts longer than this are never taken for an image path or URI (no check, no stat).
_MAX_URI_CHECK = 2048


def looks_like_image_uri(text: str) -> bool:
    """Whether ``text`` is an image URI rather than prose: cheap, at most one ``stat``.

    True for a ``data:image/...`` URI, an ``http(s)://`` or ``file://`` URL whose path ends in
    an image suffix, or an existing file with an image suffix. Long or multi-line strings
    are never checked.

    Example:
        >>> looks_like_image_uri("a cat on a sofa"), looks_like_image_uri("data:image/png;base64,AA")
        (False, True)
    """
    if len(text) > _MAX_URI_CHECK or "\n" in text:
        return False
    candidate = text.strip()
    lower = candidate.lower()
    if lower.startswith("data:image/"):
        return True
    if lower.startswith(("http://", "https://", "file://")):
        return urllib.parse.urlsplit(lower).path.endswith(IMAGE_SUFFIXES)
    if not lower.endswith(IMAGE_SUFFIXES):
        return False
    try:
        return os.path.isfile(os.path.expanduser(candidate))
    except (OSError, ValueError):  # e.g. an embedded NUL byte
        return False


def _check_image_batch(images: object) -> None:
    """Refuse one image where a list of them is expected.

    Iterating a path string would embed its characters (``embed_image("cat.jpg")`` failing
    on an image named ``"c"``), bytes would give ints and a file object its lines.
    """
    from PIL import Image

    single = (str, bytes, bytearray, memoryview, os.PathLike, Image.Image, ImageSource)
    if isinstance(images, single) or hasattr(images, "read"):
        raise TypeError(
            f"expected a list of images, got a single {type(images).__name__} "
            f"({describe(images)}); pass it in a list: [image]"
        )


def _check_texts(texts: object) -> None:
    """Refuse a lone string or non-string items with a message naming them."""
    if isinstance(texts, str):
        raise TypeError(
            "embed_documents takes a list of texts, not a str; use embed_query(text) for one"
        )
    items: Iterable[object] = texts  # type: ignore[assignment]
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"text #{index} is {type(text).__name__}, not str: {text!r:.80}")


@dataclass
class EmbeddingResult:
    """Outcome of :meth:`ImageEmbeddings.try_embed_images`.

    Attributes:
        vectors: ``float32`` array ``(len(indices), dim)``.
        indices: Input position of each row of ``vectors``, ascending.
        errors: One :class:`ImageLoadError` (with ``index`` and ``code``) per failed input.
        sha256: With ``hash_inputs=True`` (or ``expected_sha256``): per row of ``vectors``,
            the hex SHA-256 of the encoded bytes that row's pixels were decoded from
            (``None`` for a PIL image or an array); ``None`` when not asked for.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings

            result = ImageEmbeddings("timm:efficientnet_lite0").try_embed_images(
                ["cat.jpg", "missing.jpg"], hash_inputs=True
            )
            result.indices, result.sha256, [e.code for e in result.errors]
    """

    vectors: np.ndarray
    indices: list[int]
    errors: list[ImageLoadError]
    sha256: list[str | None] | None = None

    @property
    def ok(self) -> bool:
        """Whether every input was embedded."""
        return not self.errors


class ImageEmbeddings(BaseModel, Embeddings):
    """Local image embeddings for LangChain (open_clip, timm, torchvision).

    Images go through :meth:`embed_image` / :meth:`embed_images`; for CLIP-type models,
    :meth:`embed_documents` / :meth:`embed_query` embed text into the same space, so a text
    query finds images. Vectors are L2-normalised by default, computed in batches in
    ``eval()`` mode under ``torch.inference_mode()``.

    Setup:
        .. code-block:: bash

            pip install "langchain-image-embeddings[open-clip]"   # or [timm], [all]

    Key init args:
        model: str | ImageEncoder
            An encoder spec (``"open_clip:ViT-B-32"``, ``"timm:efficientnet_lite0"``,
            ``"torchvision:resnet50"``) or an encoder object. Default: CLIP ViT-B/32 on LAION-2B.
        model_kwargs: dict
            Options for the encoder (``pretrained``, ``pooling``, ``embedding_dim`` ...).
        device: str
            ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        batch_size: int
            Images or texts per forward pass.
        normalize: bool
            L2-normalise the vectors (cosine similarity = inner product).
        load_options: ImageLoadOptions
            Limits for reading images (pixel cap, byte cap, remote fetching).
        show_progress: bool
            Show a tqdm progress bar with images/s (off by default in the library).
        num_workers: int | None
            Decode threads running while the model works (``None``: sized by measurement of
            the decode and model times, see docs/performance.md; ``0``: decode in the calling
            thread; a number: exactly that many).
        prefetch_batches: int
            Batches decoded ahead of the model; bounds memory (default 2).
        fast_decode: bool
            Decode JPEGs at the smallest DCT scale covering the model input and pre-shrink
            huge images of other formats (cosine >= 0.998 to the full decode; default on).
        gpu_decode: bool | None
            Decode JPEGs on the GPU (nvJPEG) and resize them there (``None``: on for CUDA;
            ``False``: off). Other formats and rejected files take the CPU path.
        precision: str
            ``"auto"`` (fp16 autocast on CUDA, fp32 elsewhere), ``"fp32"``, ``"fp16"``,
            ``"bf16"``. Half precision on a CPU is usually much slower: not a default there.
            ``"int8"``: dynamic int8 quantisation, with ``runtime="onnx"`` or ``"openvino"``
            only (opt-in; cosine to fp32 and retrieval effect in docs/performance.md).
        runtime: str
            Where the forward pass runs. ``"auto"`` (default): eager PyTorch, and on a CPU,
            once the model has spent ``$IMGEMB_AUTO_RUNTIME_AFTER_S`` (10) seconds on image
            batches, the fp32 runtime measured fastest on this machine among torch, ONNX
            Runtime and OpenVINO (vectors equal to torch's; the choice remembered per model
            and CPU, so later processes skip the measuring; see docs/performance.md and
            :meth:`runtime_report`). Applies to models built from a spec; an encoder object
            runs as given. ``"torch"`` (eager PyTorch, any device),
            ``"onnx"`` (ONNX Runtime) or ``"openvino"`` (OpenVINO), both CPU only. The image
            tower (and a CLIP text tower) is exported to ONNX once and cached on disk
            (``$IMGEMB_CACHE_DIR``, default ``~/.cache/langchain-image-embeddings/runtimes``);
            fp32 vectors match torch (cosine >= 0.9999) and the store fingerprint does not
            change, so a store indexed with one runtime is searched with another. Extras
            ``[onnx]`` / ``[openvino]``. ``model_kwargs`` may carry ``runtime`` and
            ``precision`` too (as the CLI's ``--runtime`` / ``--precision`` do).
        progress_callback: Callable[[PipelineProgress], None] | None
            Called after every image batch with done/failed counts and images/s.

    Texts that are images:
        A CLIP model handed image paths as *text* (``embed_documents(["photos/cat.jpg"])``,
        as stock ``FAISS.from_texts(paths, embeddings)`` does) embeds the path string, not the
        picture. The first time a text to embed is an existing image file or an image URI
        (see :func:`looks_like_image_uri`), a ``UserWarning`` names :meth:`embed_image` and
        ``add_images``; it is shown at most once per ``ImageEmbeddings`` object.

    Instantiate:
        .. code-block:: python

            from langchain_image_embeddings import ImageEmbeddings

            embeddings = ImageEmbeddings("timm:efficientnet_lite0")   # offline, image-only
            clip = ImageEmbeddings("open_clip:ViT-B-32", model_kwargs={"pretrained": "laion2b_s34b_b79k"})

    Embed images:
        .. code-block:: python

            vectors = embeddings.embed_image(uris=["cat.jpg", "dog.png"])
            vectors = embeddings.embed_images([pil_image, "data:image/png;base64,...", b"..."])

    Embed text (CLIP models):
        .. code-block:: python

            query_vector = clip.embed_query("a cat sleeping on a sofa")

    Async:
        .. code-block:: python

            vectors = await embeddings.aembed_image(uris=["cat.jpg"])
    """

    model: str | ImageEncoder = DEFAULT_MODEL
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    device: str = "auto"
    batch_size: int = Field(default=32, gt=0)
    normalize: bool = True
    load_options: ImageLoadOptions = Field(default_factory=ImageLoadOptions)
    show_progress: bool = False
    num_workers: int | None = Field(default=None, ge=0)
    prefetch_batches: int = Field(default=2, gt=0)
    fast_decode: bool = True
    gpu_decode: bool | None = None
    precision: EmbeddingPrecision = "auto"
    """``"auto"``, ``"fp32"``, ``"fp16"``, ``"bf16"``, or ``"int8"`` (exported runtimes only)."""
    runtime: RuntimeChoice = "auto"
    """``"auto"`` (measured, see :meth:`runtime_report`), ``"torch"`` (eager), ``"onnx"``
    (ONNX Runtime) or ``"openvino"``: where inference runs. The exported model is cached on
    disk under ``$IMGEMB_CACHE_DIR`` (see :mod:`~langchain_image_embeddings.encoders.runtimes`)."""
    progress_callback: Callable[[PipelineProgress], None] | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    _encoder: ImageEncoder | None = PrivateAttr(default=None)
    _warned_text_uri: bool = PrivateAttr(default=False)

    def __init__(self, model: str | ImageEncoder = DEFAULT_MODEL, **kwargs: Any) -> None:
        super().__init__(model=model, **kwargs)

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str | ImageEncoder) -> str | ImageEncoder:
        if isinstance(value, str):
            from langchain_image_embeddings.encoders import absolute_local_model, parse_spec

            parse_spec(value)  # fail at construction on a malformed spec, not at first use
            return absolute_local_model(value)
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        from langchain_image_embeddings.devices import check_device

        return check_device(value)  # fail at construction, not inside torch at first use

    @model_validator(mode="before")
    @classmethod
    def _lift_runtime_kwargs(cls, data: Any) -> Any:
        """Move ``runtime`` / ``precision`` out of ``model_kwargs`` (the CLI passes them
        there): they configure inference, not the encoder."""
        if not isinstance(data, dict) or not isinstance(data.get("model_kwargs"), dict):
            return data
        kwargs = dict(data["model_kwargs"])
        data = dict(data)
        for name in ("runtime", "precision"):
            if name in kwargs:
                value = kwargs.pop(name)
                data.setdefault(name, value)
        data["model_kwargs"] = kwargs
        return data

    @model_validator(mode="after")
    def _check_runtime(self) -> ImageEmbeddings:
        from langchain_image_embeddings.encoders.runtimes import check_runtime

        exported = self.runtime in ("onnx", "openvino")
        device = "cpu" if exported and self.device == "auto" else self.device
        check_runtime(self.runtime, self.precision, device)
        return self

    @classmethod
    def from_pretrained(cls, directory: str, **kwargs: Any) -> ImageEmbeddings:
        """Load a model saved with ``save_pretrained`` (see the training extra).

        Equivalent to ``ImageEmbeddings(f"local:{directory}", **kwargs)``, except that the
        folder is checked now (as Hugging Face's ``from_pretrained`` does), not at first use.

        Raises:
            WeightsNotFoundError: No model saved by ``save_pretrained`` in ``directory``.
        """
        require_torch(f"local:{directory}")
        from langchain_image_embeddings.encoders.local import read_config

        read_config(directory)
        return cls(f"local:{directory}", **kwargs)

    # -- the encoder --------------------------------------------------------------------------
    @property
    def encoder(self) -> ImageEncoder:
        """The encoder, created on first use and moved to :attr:`device`."""
        if self._encoder is None:
            if not isinstance(self.model, ImageEncoder):
                require_torch(self.model)
            exported = self.runtime in ("onnx", "openvino")
            given = self.model.runtime if isinstance(self.model, ImageEncoder) else "torch"
            # Exported runtimes run on the CPU: "auto" must not pick a GPU for them.
            on_cpu = (exported or given != "torch") and self.device == "auto"
            device = "cpu" if on_cpu else resolve_device(self.device)
            if isinstance(self.model, ImageEncoder):
                encoder = self.model.to(device)
            else:
                from langchain_image_embeddings.encoders import create_encoder

                encoder = create_encoder(self.model, **{**self.model_kwargs, "device": device})
            if exported:
                from langchain_image_embeddings.encoders.runtimes import with_runtime

                # A caller's encoder object keeps running torch; a fresh one is ours.
                encoder = with_runtime(
                    encoder,
                    self.runtime,
                    precision=self.precision,
                    share=isinstance(self.model, ImageEncoder),
                )
            elif (
                self.runtime == "auto"
                and not isinstance(self.model, ImageEncoder)  # a caller's runs as given
                and encoder.device == "cpu"
                and self.precision in ("auto", "fp32")
            ):
                from langchain_image_embeddings.encoders.runtimes import with_runtime

                # Torch until the workload is worth measuring (encoders/runtimes/auto.py).
                encoder = with_runtime(encoder, "auto", share=False)
            self._encoder = encoder
        return self._encoder

    def runtime_report(self) -> RuntimeReport:
        """Where image batches run now and why, with the measured speeds if any.

        Does not load the model. With ``runtime="auto"`` on a CPU the report says how much
        model time is left before the choice, then what was chosen, from which measurement
        (``measurement.images_per_second`` per runtime, ``min_cosine`` to torch) and
        whether it was measured now or remembered from an earlier process.

        Example:
            >>> report = ImageEmbeddings("timm:efficientnet_lite0", device="cpu").runtime_report()
            >>> report.setting, report.active
            ('auto', 'torch')
        """
        from langchain_image_embeddings.encoders.runtimes import RuntimeReport
        from langchain_image_embeddings.encoders.runtimes.auto import auto_runtime_of

        encoder = self.encoder
        auto = auto_runtime_of(encoder)
        if auto is not None:
            return auto.report(self.runtime)
        if self.runtime != "auto":
            reason = f"runtime={self.runtime!r} was asked for"
        elif isinstance(self.model, ImageEncoder):
            reason = "an encoder object runs as given (with_runtime(encoder, 'auto') measures)"
        elif encoder.device != "cpu":
            reason = f"device {encoder.device}: eager torch, precision={self.precision!r}"
        else:
            reason = f"precision={self.precision!r} runs on eager torch"
        return RuntimeReport(self.runtime, encoder.runtime, reason)

    @property
    def _torch_precision(self) -> Precision:
        """The autocast precision for torch code paths (int8 is the runtime's business)."""
        return "fp32" if self.precision == "int8" else self.precision

    @property
    def model_id(self) -> str:
        """The encoder spec, e.g. ``"open_clip:ViT-B-32"``."""
        return self.model if isinstance(self.model, str) else self.model.spec

    @property
    def dim(self) -> int:
        """Length of the vectors (loads the model)."""
        return self.encoder.dim

    @property
    def supports_text(self) -> bool:
        """Whether text can be embedded (CLIP-type models)."""
        return self.encoder.has_text

    # -- text ----------------------------------------------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts with the model's text tower (CLIP-type models only).

        Raises:
            EncoderError: The model has no text tower (e.g. a ResNet).
        """
        return self.embed_texts_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """Embed one text query into the image space."""
        return self.embed_documents([text])[0]

    def embed_texts_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as a ``float32`` array ``(len(texts), dim)``, tokenised per batch."""
        import numpy as np

        _check_texts(texts)
        encoder = self.encoder
        if not texts:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        if not self._warned_text_uri and encoder.has_text:
            self._warn_if_image_uris(texts)
        from langchain_image_embeddings.devices import autocast_context, resolve_precision

        dtype = resolve_precision(self._torch_precision, encoder.device)
        chunks = []
        for i in range(0, len(texts), self.batch_size):
            with autocast_context(encoder.device, dtype):
                features = encoder.encode_texts(texts[i : i + self.batch_size])
            chunks.append(self._finish(features))
        return np.concatenate(chunks)

    def _warn_if_image_uris(self, texts: Sequence[str]) -> None:
        """Warn (once per object) when a text to embed is an image path or URI."""
        found = next((t for t in texts if isinstance(t, str) and looks_like_image_uri(t)), None)
        if found is None:
            return
        self._warned_text_uri = True
        shown = found if len(found) <= 80 else found[:77] + "..."
        warnings.warn(
            f"ImageEmbeddings is embedding {shown!r} as TEXT (the string, not the picture) "
            f"with {self.model_id}'s text tower. To embed images, call "
            "embed_image(uris=[...]) / embed_images([...]), use a store's add_images([...]), "
            "or wrap the model in ImageDocumentEmbeddings for a stock LangChain vector store. "
            "(Shown once per ImageEmbeddings object.)",
            UserWarning,
            stacklevel=4,
        )

    # -- images --------------------------------------------------------------------------------
    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed images given as URIs: paths, ``file://``, ``http(s)://`` or ``data:`` URIs.

        This is the signature langchain-chroma's ``add_images`` /
        ``similarity_search_by_image``, LanceDB and SingleStore call.
        """
        return self.embed_images(uris)

    def embed_images(self, images: Iterable[ImageInput]) -> list[list[float]]:
        """Embed a batch of images of any supported kind (see :data:`ImageInput`).

        Raises:
            ImageLoadError: An input cannot be read; the error names it and its index.
        """
        return self.embed_images_array(images).tolist()  # type: ignore[no-any-return]

    def embed_images_array(self, images: Iterable[ImageInput]) -> np.ndarray:
        """Embed images as one ``float32`` array ``(n, dim)`` (no Python-float conversion)."""
        import numpy as np

        chunks = list(self.iter_image_batches(images))
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks)

    def try_embed_images(
        self,
        images: Iterable[ImageInput],
        *,
        hash_inputs: bool = False,
        expected_sha256: Sequence[str | None] | None = None,
    ) -> EmbeddingResult:
        """Embed what can be read; report, per input, the error of what cannot.

        One bad input never aborts the batch, and none is dropped silently: every input
        index is either in ``result.indices`` (with its row in ``result.vectors``) or in
        ``result.errors`` (an :class:`ImageLoadError` with ``index`` and ``code``).

        Args:
            images: Any :data:`~langchain_image_embeddings.images.ImageInput`. An
                :class:`~langchain_image_embeddings.images.ImageSource` (from
                :func:`~langchain_image_embeddings.images.read_image_source`) is decoded
                from the bytes it holds: an ``http(s)`` image already downloaded is never
                downloaded again.
            hash_inputs: Fill ``result.sha256`` with the SHA-256 of the exact bytes each
                row was decoded from (hashed on the decode threads from the same buffer).
            expected_sha256: Per input, the SHA-256 its bytes must have (``None``: no
                check), e.g. the one recorded when it was described; implies
                ``hash_inputs``. An input whose bytes changed since fails with code
                ``"changed"``, and nothing is embedded for it.

        Raises:
            ValueError: ``expected_sha256`` does not have one entry per input.

        Example:
            .. code-block:: python

                from langchain_image_embeddings.images import ImageLoadOptions, read_image_source

                options = ImageLoadOptions(allow_remote=True)
                source = read_image_source("https://example.org/cat.jpg", options)  # one GET
                result = embeddings.try_embed_images([source], hash_inputs=True)
                assert result.sha256 == [source.sha256]
        """
        import numpy as np

        errors: list[ImageLoadError] = []
        chunks: list[np.ndarray] = []
        indices: list[int] = []
        hashes: list[str | None] | None = [] if hash_inputs or expected_sha256 is not None else None
        _check_image_batch(images)
        pipeline = self.pipeline("skip")
        for batch in pipeline.run(images, hash_inputs=hash_inputs, expected_sha256=expected_sha256):
            errors.extend(batch.errors)
            if batch.indices:
                chunks.append(batch.vectors)
                indices.extend(batch.indices)
                if hashes is not None and batch.sha256 is not None:
                    hashes.extend(batch.sha256)
        array = np.concatenate(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)
        return EmbeddingResult(vectors=array, indices=indices, errors=errors, sha256=hashes)

    def iter_image_batches(self, images: Iterable[ImageInput]) -> Iterator[np.ndarray]:
        """Stream ``float32`` arrays of at most ``batch_size`` vectors, in input order.

        Inputs are consumed lazily, so a generator over millions of paths is fine.

        Raises:
            ImageLoadError: At the first input that cannot be read.
        """
        for _, vectors in self._iter_batches(images, None):
            yield vectors

    def pipeline(self, on_error: str = "raise") -> ImagePipeline:
        """The streaming :class:`~langchain_image_embeddings.pipeline.ImagePipeline` with
        this object's settings (``on_error``: ``"raise"`` or ``"skip"``)."""
        return ImagePipeline(
            self.encoder,
            batch_size=self.batch_size,
            load_options=self.load_options,
            num_workers=self.num_workers,
            prefetch_batches=self.prefetch_batches,
            fast_decode=self.fast_decode,
            gpu_decode=self.gpu_decode,
            precision=self._torch_precision,
            normalize=self.normalize,
            on_error="skip" if on_error == "skip" else "raise",
            show_progress=self.show_progress,
            progress_callback=self.progress_callback,
        )

    def _iter_batches(
        self, images: Iterable[ImageInput], errors: list[ImageLoadError] | None
    ) -> Iterator[tuple[list[int], np.ndarray]]:
        _check_image_batch(images)
        pipeline = self.pipeline("raise" if errors is None else "skip")
        for batch in pipeline.run(images):
            if errors is not None:
                errors.extend(batch.errors)
            if batch.indices:
                yield batch.indices, batch.vectors

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The encoder's own preprocessing of one RGB image."""
        return self.encoder.preprocess(image)

    def _finish(self, features: torch.Tensor) -> np.ndarray:
        return finish(features, self.normalize)

    # -- async ---------------------------------------------------------------------------------
    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents` (runs in an executor: the work is CPU/GPU bound)."""
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return await run_in_executor(None, self.embed_query, text)

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image`."""
        return await run_in_executor(None, self.embed_image, uris)

    async def aembed_images(self, images: Iterable[ImageInput]) -> list[list[float]]:
        """Async :meth:`embed_images`."""
        return await run_in_executor(None, self.embed_images, images)
