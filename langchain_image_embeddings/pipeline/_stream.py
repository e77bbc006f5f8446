"""A streaming, batched image-embedding pipeline that keeps the model busy.

Inputs are consumed lazily (a generator over millions of paths is fine). Each input is read
with :func:`~langchain_image_embeddings.images.load_image` and preprocessed by the encoder's
own transform in a pool of decode threads (Pillow's decoders and resizers release the GIL),
while the main thread runs the model on the previous batch. At most
``batch_size * prefetch_batches`` inputs are in flight, so memory does not grow with the
corpus, and results come back in input order.

Decoding is the dominant cost for large photos on CPU, so by default (``fast_decode=True``)
JPEGs are decoded at the smallest DCT scale that still covers the model's input
at twice the size the model's resize needs (``Image.draft`` picks the DCT scale 1/2, 1/4 or
1/8), and very large images of other formats are shrunk by an integer factor
(``Image.reduce``) that keeps at least twice the needed size, before the encoder's own
transform does the final, antialiased resize.

The number of decode threads is sized by measurement unless ``num_workers`` is given
(:mod:`~langchain_image_embeddings.pipeline._decode_pool`): from the decode and model times of the
first batches, then grown while the model waits on decoding and shrunk while decoded
batches pile up. What it decided is in :attr:`ImagePipeline.stats` and in every
:class:`PipelineProgress`.

On CUDA, JPEGs are decoded on the GPU (nvJPEG) and resized there
(:mod:`~langchain_image_embeddings.pipeline._gpu_decode`; ``gpu_decode=False`` turns it off); the
batch is stacked in pinned memory, copied with ``non_blocking=True`` and run under fp16
autocast (``precision="auto"``); on CPU the default is fp32 (half precision is a slow
software fallback on CPUs without AVX-512/AMX).

With ``run(..., hash_inputs=True)`` each decode thread also hashes the encoded bytes it
decodes (the same buffer: read once, hashed, decoded) and :attr:`BatchResult.sha256` reports
them; ``expected_sha256`` turns bytes that differ from the ones hashed earlier (a file
rewritten between being described and being embedded) into a ``"changed"`` error. An
:class:`~langchain_image_embeddings.images.ImageSource` input is decoded from the bytes it
holds, never read again. Plain runs pay nothing for this.

The work is split by concern: :mod:`~langchain_image_embeddings.pipeline._steps` (pure
steps and decisions: decode sizes, the transform split, ``finish``),
:mod:`~langchain_image_embeddings.pipeline._prefetch` (ordered read-ahead over the decode
threads) and :mod:`~langchain_image_embeddings.pipeline._report` (batches, progress).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.devices import (
    Precision,
    autocast_context,
    resolve_precision,
    use_pinned_memory,
)
from langchain_image_embeddings.errors import ImageLoadError, OnError
from langchain_image_embeddings.images._load import ImageInput, load_image, read_image_bytes
from langchain_image_embeddings.images._options import ImageLoadOptions, describe
from langchain_image_embeddings.images._pdf import PageAddress, load_address_hashed, parse_address
from langchain_image_embeddings.pipeline._decode_pool import (
    DecodeSizer,
    DecodeStats,
    SizingMode,
    max_decode_workers,
    start_workers,
)
from langchain_image_embeddings.pipeline._gpu_decode import (
    DeviceJpegDecoder,
    EncodedJpeg,
    TensorPreprocess,
    inspect_jpeg,
    resolve_gpu_decode,
)
from langchain_image_embeddings.pipeline._prefetch import DecodeQueue
from langchain_image_embeddings.pipeline._report import (
    BatchResult,
    PipelineProgress,
    ProgressReporter,
)
from langchain_image_embeddings.pipeline._steps import (
    REDUCING_GAP,
    SplitTransform,
    decode_target_size,
    finish,
    shrink,
    split_transform,
    wants_channels_last,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from langchain_image_embeddings.encoders.base import ImageEncoder

__all__ = ["ImagePipeline"]


#: The last size the sizer settled on, per encoder and decode path: the next pipeline over the
#: same encoder (``ImageEmbeddings`` makes one per call) starts there instead of from scratch.
_LAST_WORKERS: weakref.WeakKeyDictionary[Any, dict[bool, int]] = weakref.WeakKeyDictionary()


class ImagePipeline:
    """Stream images through an encoder in ordered batches, decoding in parallel.

    Args:
        encoder: Any :class:`~langchain_image_embeddings.encoders.base.ImageEncoder`.
        batch_size: Images per forward pass.
        load_options: Limits for reading images (see :class:`ImageLoadOptions`).
        num_workers: Decode threads; ``None`` = sized by measurement (starting from
            one thread per core, see :mod:`~langchain_image_embeddings.pipeline._decode_pool`),
            ``0`` = decode in the calling thread. An explicit number is never changed.
        prefetch_batches: Batches decoded ahead of the model (bounds memory).
        fast_decode: JPEG draft decoding and integer pre-reduction (see module docs).
        precision: ``"auto"``, ``"fp32"``, ``"fp16"`` or ``"bf16"`` (see :data:`Precision`).
        normalize: L2-normalise the vectors.
        on_error: ``"raise"`` or ``"skip"`` (failures are reported in
            :attr:`BatchResult.errors`).
        show_progress: Show a tqdm bar with images/s.
        progress_callback: Called with a :class:`PipelineProgress` after every batch.
        channels_last: Use ``channels_last`` memory format; ``None`` = for CNNs only.
        gpu_decode: Decode JPEGs on the model's device (nvJPEG on CUDA; see
            :mod:`~langchain_image_embeddings.pipeline._gpu_decode`). ``None`` = on for CUDA when
            torchvision supports it, ``False`` = never, ``True`` = always (on a CPU model the
            same tensor code runs on the CPU).

    Example:
        .. code-block:: python

            from pathlib import Path

            from langchain_image_embeddings import create_encoder
            from langchain_image_embeddings.pipeline import ImagePipeline

            pipeline = ImagePipeline(create_encoder("timm:efficientnet_lite0"), on_error="skip")
            paths = (str(p) for p in Path("photos").rglob("*.jpg"))  # lazy is fine
            for batch in pipeline.run(paths):
                print(batch.indices, batch.vectors.shape, [e.code for e in batch.errors])
            print(pipeline.stats.workers, pipeline.stats.decisions)   # what the sizer chose
    """

    def __init__(
        self,
        encoder: ImageEncoder,
        *,
        batch_size: int = 32,
        load_options: ImageLoadOptions | None = None,
        num_workers: int | None = None,
        prefetch_batches: int = 2,
        fast_decode: bool = True,
        precision: Precision = "auto",
        normalize: bool = True,
        on_error: OnError = "raise",
        show_progress: bool = False,
        progress_callback: Callable[[PipelineProgress], None] | None = None,
        channels_last: bool | None = None,
        gpu_decode: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if prefetch_batches < 1:
            raise ValueError(f"prefetch_batches must be at least 1, not {prefetch_batches}")
        if num_workers is not None and num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, not {num_workers}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        self.encoder = encoder
        self.batch_size = batch_size
        self.load_options = load_options or ImageLoadOptions()
        device = encoder.device
        #: Whether the decode pool is sized by measurement (``num_workers=None``).
        self.adaptive_workers = num_workers is None
        self.max_workers = max_decode_workers(device) if num_workers is None else num_workers
        self.num_workers = start_workers(device) if num_workers is None else num_workers
        self.prefetch_batches = prefetch_batches
        self.fast_decode = fast_decode
        self.autocast_dtype = resolve_precision(precision, device)
        self.pin_memory = use_pinned_memory(device)
        self.normalize = normalize
        self.on_error = on_error
        self.show_progress = show_progress
        self.progress_callback = progress_callback
        self._channels_last = channels_last
        self._target: tuple[int, int] | None = None
        self._split: SplitTransform | None = None
        self._prepared = False
        self._gpu_option = gpu_decode
        #: Whether JPEGs are decoded on the model's device (decided when the model loads).
        self.gpu_decode = False
        self._device_decoder: DeviceJpegDecoder | None = None
        self._sizer: DecodeSizer | None = None
        self._local = threading.local()  # per decode thread: bytes of its last decode
        self._device_decoded = 0
        self._cpu_fallbacks = 0

    @property
    def max_in_flight(self) -> int:
        """Inputs read ahead of the batch being assembled (the memory bound)."""
        return max(self.batch_size * self.prefetch_batches, self.max_workers)

    @property
    def stats(self) -> DecodeStats:
        """What the decode stage decided and measured in the latest :meth:`run`."""
        mode: SizingMode = (
            "inline" if self.max_workers == 0 else "adaptive" if self.adaptive_workers else "fixed"
        )
        sizer = self._sizer or DecodeSizer(
            device=self.encoder.device,
            start=self.num_workers,
            max_workers=self.max_workers,
            adaptive=self.adaptive_workers,
        )
        return sizer.stats(
            mode,
            gpu_decode=self.gpu_decode,
            device_decoded=self._device_decoded,
            cpu_fallbacks=self._cpu_fallbacks,
        )

    @property
    def target_size(self) -> tuple[int, int] | None:
        """``(width, height)`` decodes must cover when ``fast_decode`` (loads the model)."""
        self._prepare()
        return self._target

    def _prepare(self) -> None:
        if self._prepared:
            return
        self.encoder.load()
        if self.fast_decode:
            self._target = decode_target_size(self.encoder.preprocess_config)
        self._split = split_transform(self.encoder.transform)
        plan = TensorPreprocess.from_transform(self.encoder.transform)
        self.gpu_decode = resolve_gpu_decode(self._gpu_option, self.encoder.device, plan)
        if self.gpu_decode and plan is not None:
            keep = self._target
            self._device_decoder = DeviceJpegDecoder(
                plan,
                self.encoder.device,
                reduce_to=None
                if keep is None
                else (REDUCING_GAP * keep[0], REDUCING_GAP * keep[1]),
            )
        module = self.encoder.module
        use_cl = wants_channels_last(module) if self._channels_last is None else self._channels_last
        if use_cl:
            import torch

            module.to(memory_format=torch.channels_last)
        self._channels_last = use_cl
        self._prepared = True

    def load_and_preprocess(self, source: ImageInput, index: int | None = None) -> torch.Tensor:
        """Read one input and apply the encoder's whole transform: ``(3, H, W)`` float."""
        return self._collate([self.prepare_input(source, index)])[0]

    def prepare_input(self, source: ImageInput, index: int | None = None) -> Any:
        """What each decode worker runs: read, shrink, and the per-image part of the
        transform. Returns a ``uint8`` ``(H, W, 3)`` array when the transform could be split
        (see :class:`SplitTransform`), else the transformed ``(3, H, W)`` tensor."""
        import numpy as np

        self._prepare()
        target = self._target
        draft = None if target is None else (REDUCING_GAP * target[0], REDUCING_GAP * target[1])
        image = load_image(source, self.load_options, index=index, draft_size=draft)
        self._local.decoded_bytes = image.width * image.height * len(image.getbands())
        if target is not None:
            # Files were already reduced inside load_image (before mode conversion); this
            # catches in-memory PIL/array inputs and palette images, a no-op otherwise.
            image = shrink(image, target)
        if self._split is None:
            return self.encoder.preprocess(image)
        image = self._split.pil_part(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image)

    def prepare_for_device(self, source: ImageInput, index: int | None = None) -> Any:
        """What each decode worker runs with GPU decoding: read the bytes and run the header
        checks; a JPEG the device decoder can take comes back as an :class:`EncodedJpeg`,
        anything else goes through :meth:`prepare_input` (the CPU path)."""
        self._prepare()
        data = read_image_bytes(source, self.load_options, index=index)
        if data is None:  # PIL images, arrays, refused URLs: the CPU path (and its errors)
            return self.prepare_input(source, index)
        return self._device_item(data, source, index)

    def _device_item(self, data: bytes, source: object, index: int | None) -> Any:
        """An :class:`EncodedJpeg` for the device decoder, or the CPU path's output."""
        try:
            item = inspect_jpeg(data, source, self.load_options)
        except ImageLoadError as err:
            raise (err if index is None else err.with_index(index)) from err.__cause__
        if item is None:
            return self._prepare_bytes(data, source, index)
        self._local.decoded_bytes = len(data)
        return item

    def prepare_hashed(
        self, source: ImageInput, index: int | None = None, expected: str | None = None
    ) -> tuple[Any, str | None]:
        """What each decode worker runs with ``hash_inputs``: read the encoded bytes once,
        hash them, and decode that same buffer (on the device or the CPU path).

        Returns:
            The worker's output (as :meth:`prepare_input` / :meth:`prepare_for_device`) and
            the hex SHA-256 of the bytes decoded; ``None`` for inputs that hold no encoded
            bytes (PIL images, numpy arrays).

        Raises:
            ImageLoadError: As :meth:`prepare_input`; code ``"changed"`` when ``expected``
                is given and the bytes read now hash to something else.
        """
        self._prepare()
        address = parse_address(source) if isinstance(source, str) else None
        if address is not None:
            return self._prepare_page_hashed(address, source, index, expected)
        data = read_image_bytes(source, self.load_options, index=index)
        digest = None if data is None else hashlib.sha256(data).hexdigest()
        if data is None or digest is None:  # PIL images, arrays, refused URLs: the CPU path
            item = self.prepare_input(source, index)
            if expected is not None:
                raise ImageLoadError(
                    describe(source),
                    "holds no encoded bytes to check against the expected SHA-256",
                    "invalid_input",
                    index,
                )
            return item, None
        if expected is not None and digest != expected:
            raise ImageLoadError(
                describe(source),
                f"its bytes changed since they were read: SHA-256 {digest[:12]}... instead of "
                f"{expected[:12]}...; nothing embedded",
                "changed",
                index,
            )
        if self.gpu_decode:
            return self._device_item(data, source, index), digest
        return self._prepare_bytes(data, source, index), digest

    def _prepare_page_hashed(
        self, address: PageAddress, source: object, index: int | None, expected: str | None
    ) -> tuple[Any, str]:
        """A PDF page or figure: rendered (at the model's draft scale) and hashed from one
        read of the file. Its hash is the page's content hash (the file's bytes and the page
        number, as ``read_image_source`` describes it), not that of an encoding of it."""
        target = self._target
        draft = None if target is None else (REDUCING_GAP * target[0], REDUCING_GAP * target[1])
        try:
            image, digest = load_address_hashed(address, self.load_options, draft)
        except ImageLoadError as err:
            raise (err if index is None else err.with_index(index)) from err.__cause__
        if expected is not None and digest != expected:
            raise ImageLoadError(
                describe(source),
                f"the PDF changed since it was read: page hash {digest[:12]}... instead of "
                f"{expected[:12]}...; nothing embedded",
                "changed",
                index,
            )
        return self.prepare_input(image, index), digest

    def _prepare_bytes(self, data: bytes, source: object, index: int | None) -> Any:
        """The CPU path on bytes already read, naming the original input in errors."""
        try:
            return self.prepare_input(data, index)
        except ImageLoadError as err:
            raise ImageLoadError(describe(source), err.reason, err.code, index) from err

    def _decode_on_device(
        self, items: list[Any], indices: list[int], errors: list[ImageLoadError]
    ) -> tuple[list[Any], list[int]]:
        """Decode the batch's :class:`EncodedJpeg` items on the device; the CPU path takes
        any the device decoder rejects (an error only if the CPU path fails too)."""
        positions = [i for i, item in enumerate(items) if isinstance(item, EncodedJpeg)]
        if not positions or self._device_decoder is None:
            return items, indices
        decoded = iter(self._device_decoder.decode([items[i] for i in positions]))
        kept: list[Any] = []
        kept_indices: list[int] = []
        for item, index in zip(items, indices, strict=True):
            if isinstance(item, EncodedJpeg):
                tensor = next(decoded)
                if tensor is None:
                    self._cpu_fallbacks += 1
                    try:
                        item = self._prepare_bytes(item.data, item.source, index)
                    except ImageLoadError as err:
                        if self.on_error == "raise":
                            raise
                        errors.append(err)
                        continue
                else:
                    self._device_decoded += 1
                    item = tensor
            kept.append(item)
            kept_indices.append(index)
        return kept, kept_indices

    def _collate(self, items: list[Any]) -> torch.Tensor:
        """Stack worker outputs into one float batch ``(n, 3, H, W)``."""
        import numpy as np
        import torch

        arrays = [i for i, item in enumerate(items) if isinstance(item, np.ndarray)]
        if arrays and len(arrays) < len(items):
            # GPU decoding: device-decoded rows mixed with rows that took the CPU path.
            rows = list(items)
            device = next(item.device for item in items if isinstance(item, torch.Tensor))
            converted = self._collate([items[i] for i in arrays]).to(device)
            for row, i in zip(converted, arrays, strict=True):
                rows[i] = row
            return torch.stack(rows)
        if self._split is None or not items or not isinstance(items[0], np.ndarray):
            return torch.stack(items)
        shapes = {item.shape for item in items}
        if len(shapes) != 1:  # e.g. a transform without a fixed-size crop
            return torch.stack([self._collate([item])[0] for item in items])
        batch = torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2)  # NHWC -> NCHW view
        mean = torch.tensor(self._split.mean).view(1, 3, 1, 1)
        std = torch.tensor(self._split.std).view(1, 3, 1, 1)
        pixels = batch.float().div(255)  # exactly ToTensor, then Normalize
        return pixels.sub_(mean).div_(std)

    def run(
        self,
        inputs: Iterable[ImageInput],
        *,
        hash_inputs: bool = False,
        expected_sha256: Sequence[str | None] | None = None,
    ) -> Iterator[BatchResult]:
        """Embed ``inputs`` lazily, yielding ordered :class:`BatchResult` batches.

        Args:
            inputs: Any :data:`~langchain_image_embeddings.images.ImageInput`, consumed
                lazily; an :class:`~langchain_image_embeddings.images.ImageSource` is
                decoded from the bytes it holds (nothing is read again).
            hash_inputs: Report in :attr:`BatchResult.sha256` the SHA-256 of the exact
                bytes each input's pixels were decoded from (hashed on the decode threads,
                from the same buffer). Off: nothing is hashed.
            expected_sha256: Per input position, the SHA-256 its bytes must have (``None``:
                no check); implies ``hash_inputs``. An input whose bytes differ now (a file
                rewritten since it was described) fails with code ``"changed"`` and is not
                embedded.

        Raises:
            ImageLoadError: With ``on_error="raise"``, at the first unreadable input (its
                ``index`` is set). Any other exception in a worker propagates as is.
            ValueError: ``expected_sha256`` does not have one entry per input.
        """
        import numpy as np

        self._prepare()
        total = len(inputs) if hasattr(inputs, "__len__") else None  # type: ignore[arg-type]
        if expected_sha256 is not None and total is not None and len(expected_sha256) != total:
            raise ValueError(
                f"expected_sha256 has {len(expected_sha256)} entries for {total} inputs"
            )
        hashing = hash_inputs or expected_sha256 is not None
        prepare: Callable[[ImageInput, int], Any]
        if hashing:
            prepare = self._hashing_prepare(expected_sha256)
        else:
            prepare = self.prepare_for_device if self.gpu_decode else self.prepare_input
        sizer = self._new_sizer()
        queue = DecodeQueue(
            enumerate(iter(inputs)),
            self._timed(prepare, sizer),
            prepare,
            workers=self.max_workers,
            start=sizer.workers,
            limit=self.max_in_flight,
            on_error=self.on_error,
        )
        reporter = ProgressReporter(
            total, self.show_progress, self.progress_callback, lambda: self.stats
        )
        try:
            while True:
                items, indices, errors, waited = queue.next_batch(self.batch_size)
                if not items and not errors:
                    break
                digests: dict[int, str | None] | None = None
                if hashing:
                    digests = {i: item[1] for i, item in zip(indices, items, strict=True)}
                    items = [item[0] for item in items]
                busy = time.perf_counter()
                if self.gpu_decode:
                    items, indices = self._decode_on_device(items, indices, errors)
                if items:
                    vectors = self.forward(items)
                else:
                    vectors = np.zeros((0, self.encoder.dim), dtype=np.float32)
                busy = time.perf_counter() - busy
                if queue.pooled:
                    queue.set_workers(
                        sizer.after_batch(
                            images=len(items),
                            wait_seconds=waited,
                            busy_seconds=busy,
                            next_ready=queue.next_batch_ready(self.batch_size),
                        )
                    )
                reporter.batch(len(indices), len(errors))
                yield BatchResult(
                    indices=indices,
                    vectors=vectors,
                    errors=errors,
                    sha256=None if digests is None else [digests[i] for i in indices],
                )
        finally:
            queue.close()
            if self.adaptive_workers:
                with contextlib.suppress(TypeError):  # an encoder that cannot be weakly keyed
                    _LAST_WORKERS.setdefault(self.encoder, {})[self.gpu_decode] = sizer.workers
            reporter.close()

    def _hashing_prepare(
        self, expected: Sequence[str | None] | None
    ) -> Callable[[ImageInput, int], tuple[Any, str | None]]:
        """:meth:`prepare_hashed` for input ``index``, checked against ``expected[index]``."""

        def prepare(source: ImageInput, index: int) -> tuple[Any, str | None]:
            if expected is None:
                return self.prepare_hashed(source, index)
            if index >= len(expected):
                raise ValueError(
                    f"expected_sha256 has {len(expected)} entries; input #{index} has none"
                )
            return self.prepare_hashed(source, index, expected[index])

        return prepare

    def _timed(
        self, prepare: Callable[[ImageInput, int], Any], sizer: DecodeSizer
    ) -> Callable[[ImageInput, int], Any]:
        """``prepare`` as a decode thread runs it: its CPU time and decoded bytes go to the
        sizer (thread CPU time: not inflated by sharing cores)."""

        def decode(source: ImageInput, index: int) -> Any:
            self._local.decoded_bytes = 0
            started = time.thread_time()
            try:
                return prepare(source, index)
            finally:
                sizer.record_decode(time.thread_time() - started, self._local.decoded_bytes)

        return decode

    def _new_sizer(self) -> DecodeSizer:
        start = self.num_workers
        if self.adaptive_workers:
            with contextlib.suppress(TypeError):
                start = _LAST_WORKERS.get(self.encoder, {}).get(self.gpu_decode, start)
        self._sizer = DecodeSizer(
            device=self.encoder.device,
            start=start,
            max_workers=self.max_workers,
            adaptive=self.adaptive_workers,
        )
        self._device_decoded = self._cpu_fallbacks = 0
        return self._sizer

    def forward(self, items: list[Any]) -> np.ndarray:
        """Collate :meth:`prepare_input` outputs (or CHW tensors) and run the model:
        ``float32`` ``(n, dim)``."""
        self._prepare()
        return self.forward_pixels(self._collate(items))

    def forward_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Run the model on a preprocessed batch ``(n, 3, H, W)``: ``float32`` ``(n, dim)``."""
        import torch

        self._prepare()
        if self._channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        if self.pin_memory and pixels.device.type == "cpu":
            pixels = pixels.pin_memory()  # encode_images copies with non_blocking=True
        with autocast_context(self.encoder.device, self.autocast_dtype):
            features = self.encoder.encode_images(pixels)
        return finish(features, self.normalize)
