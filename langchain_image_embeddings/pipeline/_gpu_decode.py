"""JPEG decoding and preprocessing on the model's device (nvJPEG on CUDA).

On a GPU the model outruns CPU JPEG decoding by ~30x (ViT-B/32 fp16: 17,100 img/s model
only, 563 img/s end to end on 1080p JPEGs with 16 decode threads). With GPU decoding the
decode threads only read the bytes and run the header checks; the main thread hands the
batch's JPEGs to ``torchvision.io.decode_jpeg(list_of_byte_tensors, device="cuda")``
(nvJPEG, batched), applies the EXIF orientation with tensor flips/rotations, and runs the
encoder's resize, centre crop and normalisation on the device.

Safety is unchanged: the bytes come from
:func:`~langchain_image_embeddings.images.read_image_bytes` (same file, size and remote
checks as :func:`~langchain_image_embeddings.images.load_image`) and pass
:func:`~langchain_image_embeddings.images.open_image_header` (format allow-list, pixel
limit, aspect ratio) before any pixel is decoded. Everything else takes the CPU path: other
formats, CMYK/YCCK JPEGs, JPEGs without an end-of-image marker (truncated: the CPU path
knows ``allow_truncated``), and, per file, any JPEG the device decoder rejects; a file
fails only if the CPU path fails too, with the CPU path's error.

The tensor code is written for any device, so it runs (and is tested) on a CPU.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.images._decode import open_image_header
from langchain_image_embeddings.images._options import ImageLoadOptions

if TYPE_CHECKING:
    import torch

#: Bytes of decoded pixels handed to one ``decode_jpeg`` call, and of float pixels in one
#: resize call: bounds device memory for 12 MP photos (36 MB uint8, 144 MB float each).
DEVICE_CHUNK_BYTES = 1024**3

#: torchvision decodes a list of JPEGs in one (batched nvJPEG) call from 0.19 on.
MIN_TORCHVISION = (0, 19)

_EOI = b"\xff\xd9"


def torchvision_can_decode(device: str) -> bool:
    """Whether torchvision can decode a batch of JPEGs on ``device``.

    Example:
        .. code-block:: python

            torchvision_can_decode("cuda")   # False on a machine without a GPU
    """
    try:
        import torch
        import torchvision
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    version = tuple(int(p) for p in torchvision.__version__.split("+")[0].split(".")[:2])
    if version < MIN_TORCHVISION:
        return False
    if device.startswith("cuda"):
        return bool(torch.cuda.is_available())
    return device == "cpu"


def resolve_gpu_decode(
    option: bool | None,
    device: str,
    plan: TensorPreprocess | None,
    supported: Callable[[str], bool] = torchvision_can_decode,
) -> bool:
    """Whether to decode JPEGs on the model's device.

    ``None`` (the default): on for CUDA when torchvision can decode there and the encoder's
    transform has a tensor equivalent (:meth:`TensorPreprocess.from_transform`); off
    elsewhere. ``False``: off. ``True``: on, also for a CPU model (the same torchvision
    code then runs on the CPU: useful for checking it, not faster).

    Raises:
        ValueError: ``True`` but torchvision cannot decode on ``device`` or the transform
            has no tensor equivalent.

    Example:
        >>> resolve_gpu_decode(None, "cpu", None)
        False
    """
    if option is False:
        return False
    if option is None:
        return device.startswith("cuda") and plan is not None and supported(device)
    if plan is None:
        raise ValueError(
            "gpu_decode=True needs an encoder transform of Resize + CenterCrop + ToTensor + "
            "Normalize (open_clip and timm models); this encoder's transform has no tensor "
            "equivalent"
        )
    if not supported(device):
        raise ValueError(
            f"gpu_decode=True but torchvision cannot decode JPEGs on {device!r} "
            "(needs torchvision>=0.19, and CUDA for a GPU)"
        )
    return True


@dataclass(frozen=True)
class TensorPreprocess:
    """An encoder transform's resize, crop and normalisation, for tensors on any device.

    Taken from the transform itself (so it cannot drift from the encoder's own
    preprocessing): a torchvision ``Compose`` of ``Resize``, optionally ``CenterCrop``
    and no-op mode conversions, then ``ToTensor``/``MaybeToTensor`` and ``Normalize``.

    Example:
        .. code-block:: python

            from langchain_image_embeddings import create_encoder
            from langchain_image_embeddings.pipeline._gpu_decode import TensorPreprocess

            plan = TensorPreprocess.from_transform(create_encoder("timm:efficientnet_lite0").transform)
            plan.resize, plan.crop    # 256, (224, 224)
    """

    resize: int | tuple[int, int]
    interpolation: Any
    max_size: int | None
    crop: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_transform(cls, transform: Any) -> TensorPreprocess | None:
        """The plan for ``transform``, or ``None`` when it has other steps."""
        steps = getattr(transform, "transforms", None)
        if not isinstance(steps, list) or len(steps) < 3:
            return None
        if type(steps[-2]).__name__ not in ("ToTensor", "MaybeToTensor"):
            return None
        normalize = steps[-1]
        if type(normalize).__name__ != "Normalize" or getattr(normalize, "inplace", False):
            return None
        resize: int | tuple[int, int] | None = None
        interpolation: Any = None
        max_size: int | None = None
        crop: tuple[int, int] | None = None
        for step in steps[:-2]:
            kind = type(step).__name__
            if kind == "Resize" and resize is None and crop is None:
                size = step.size
                if isinstance(size, int):
                    resize = size
                elif isinstance(size, (list, tuple)) and len(size) == 1:
                    resize = int(size[0])
                elif isinstance(size, (list, tuple)) and len(size) == 2:
                    resize = (int(size[0]), int(size[1]))
                else:
                    return None
                if getattr(step, "antialias", True) is False:
                    return None
                interpolation, max_size = step.interpolation, step.max_size
            elif kind == "CenterCrop" and resize is not None and crop is None:
                crop = (int(step.size[0]), int(step.size[1]))
            elif kind in ("MaybeConvertMode", "_convert_to_rgb") or _is_rgb_lambda(step):
                continue  # converts to RGB: the decoded tensor already is
            else:
                return None
        if resize is None:
            return None
        mean = tuple(float(v) for v in _as_list(normalize.mean))
        std = tuple(float(v) for v in _as_list(normalize.std))
        if len(mean) != 3 or len(std) != 3:
            return None
        return cls(resize, interpolation, max_size, crop, mean, std)

    def apply(self, images: torch.Tensor, reduce_to: tuple[int, int] | None = None) -> torch.Tensor:
        """Resize, crop and normalise ``(n, 3, H, W)`` uint8 images of one size: float.

        Mirrors the PIL path: with ``reduce_to`` (``(width, height)``, the fast-decode size
        the CPU path's JPEG draft and ``shrink`` keep), the images are first box-reduced by
        the same factors (:func:`fast_decode_factors`); the resize result is rounded to
        ``uint8`` values, as Pillow's is, before ``/255`` and normalisation.
        """
        import torch
        from torchvision.transforms import functional as F

        pixels = images.float()
        if reduce_to is not None:
            for factor in fast_decode_factors((pixels.shape[-1], pixels.shape[-2]), reduce_to):
                pixels = torch.nn.functional.avg_pool2d(
                    pixels, factor, factor, ceil_mode=True, count_include_pad=False
                )
        pixels = F.resize(
            pixels,
            [self.resize] if isinstance(self.resize, int) else list(self.resize),
            interpolation=self.interpolation,
            max_size=self.max_size,
            antialias=True,
        )
        pixels = pixels.round_().clamp_(0, 255)
        if self.crop is not None:
            pixels = F.center_crop(pixels, list(self.crop))
        mean = torch.tensor(self.mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, 3, 1, 1)
        normalized: torch.Tensor = pixels.div_(255).sub_(mean).div_(std)
        return normalized


def fast_decode_factors(size: tuple[int, int], keep: tuple[int, int]) -> list[int]:
    """The box reductions the CPU path applies to a ``size`` (w, h) JPEG when it must keep
    ``keep`` (w, h): the JPEG draft's DCT scale (1/2, 1/4 or 1/8, the smallest that keeps
    ``keep``), then ``shrink``'s integer factor (at least 2) on the result.

    Reducing alike on the device keeps the GPU path within cosine 0.998 of the CPU path;
    resizing the full decode instead gave 0.9979 against the CPU path's draft decode
    (Lite0, 1080p), although both were within 0.9986 of a full CPU decode.

    Example:
        >>> fast_decode_factors((4000, 3000), (512, 512)), fast_decode_factors((1920, 1080), (512, 512))
        ([4], [2])
    """
    width, height = size
    factors = []
    # Pillow's JPEG draft: the largest of 8, 4, 2 not above min(W // w, H // h).
    room = min(width // keep[0], height // keep[1])
    scale = next((s for s in (8, 4, 2) if room >= s), 1)
    if scale > 1:
        factors.append(scale)
        width, height = -(-width // scale), -(-height // scale)
    # shrink() in the pipeline: keep REDUCING_GAP x the encoder's size, i.e. ``keep``.
    factor = min(width // keep[0], height // keep[1])
    if factor >= 2:
        factors.append(factor)
    return factors


def _is_rgb_lambda(step: Any) -> bool:
    # open_clip's ``_convert_to_rgb`` wrapped in a Lambda (older versions).
    func = getattr(step, "lambd", None)
    return type(step).__name__ == "Lambda" and getattr(func, "__name__", "") == "_convert_to_rgb"


def _as_list(values: Any) -> list[Any]:
    return list(values.tolist() if hasattr(values, "tolist") else values)


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG read and checked by a decode thread, to be decoded on the device.

    Attributes:
        data: The encoded bytes.
        size: ``(width, height)`` of the stored pixels, from the header.
        orientation: EXIF orientation to apply (1 when none or when disabled).
        source: The input, to name in errors of a CPU fallback.
    """

    data: bytes
    size: tuple[int, int]
    orientation: int
    source: object

    @property
    def decoded_bytes(self) -> int:
        """Bytes of the decoded RGB pixels."""
        return self.size[0] * self.size[1] * 3


def inspect_jpeg(data: bytes, source: object, options: ImageLoadOptions) -> EncodedJpeg | None:
    """Run the header checks on encoded bytes; an :class:`EncodedJpeg` when the device
    decoder should take it, ``None`` for the CPU path.

    Raises:
        ImageLoadError: The header checks fail (format, pixel limit, aspect ratio), with
            the same code as :func:`~langchain_image_embeddings.images.load_image`.
    """
    header = open_image_header(io.BytesIO(data), source, options)
    if header.format != "JPEG" or header.mode not in ("RGB", "L"):
        return None  # CMYK/YCCK and other formats: Pillow handles them
    if not data.rstrip(b"\x00").endswith(_EOI):
        return None  # truncated: the CPU path refuses it (or allows it) exactly as usual
    orientation = 1
    if options.apply_exif_orientation:
        try:
            value = header.getexif().get(0x0112)
        except Exception:  # a broken EXIF block is ignored, as to_rgb does
            value = None
        if isinstance(value, int) and 1 <= value <= 8:
            orientation = value
    return EncodedJpeg(data, header.size, orientation, source)


def apply_orientation(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Apply an EXIF orientation (1-8) to a ``(C, H, W)`` tensor, as
    ``PIL.ImageOps.exif_transpose`` does to an image."""
    import torch

    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(image, -1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return torch.rot90(image, 1, dims=(-2, -1))
    return image


def _decode_jpeg(data: list[torch.Tensor], device: Any) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its decoders in favour of torchcodec (not a dependency).
        warnings.simplefilter("ignore", DeprecationWarning)
        out = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    return list(out) if isinstance(out, list) else [out]


class DeviceJpegDecoder:
    """Decode :class:`EncodedJpeg` items on a device and preprocess them there.

    Args:
        plan: The encoder's resize/crop/normalisation (:class:`TensorPreprocess`).
        device: Where to decode (``"cuda"``, ``"cuda:1"``; ``"cpu"`` for tests).
        chunk_bytes: Decoded bytes per ``decode_jpeg`` call / float bytes per resize call.
        reduce_to: ``(width, height)`` to keep when box-reducing like the CPU path's fast
            decode (``None``: resize the full decode).

    Example:
        .. code-block:: python

            decoder = DeviceJpegDecoder(plan, "cuda")
            pixels = decoder.decode(items)   # one (3, H, W) tensor or None per item
    """

    def __init__(
        self,
        plan: TensorPreprocess,
        device: str,
        chunk_bytes: int = DEVICE_CHUNK_BYTES,
        reduce_to: tuple[int, int] | None = None,
    ) -> None:
        self.plan = plan
        self.device = device
        self.chunk_bytes = chunk_bytes
        self.reduce_to = reduce_to

    def decode(self, items: Sequence[EncodedJpeg]) -> list[torch.Tensor | None]:
        """Preprocessed ``(3, H, W)`` float tensors on the device, in order; ``None`` for
        each item the decoder rejected (the caller decodes those on the CPU).

        Decoding and preprocessing go chunk by chunk (``chunk_bytes`` of decoded pixels),
        so only one chunk of full-size images is on the device at a time.
        """
        out: list[torch.Tensor | None] = [None] * len(items)
        positions = [i for i, item in enumerate(items) if not self.upscales(item)]
        for chunk in self._chunks(positions, [items[i].decoded_bytes for i in positions]):
            for i, row in zip(chunk, self._preprocess([items[i] for i in chunk]), strict=True):
                out[i] = row
        return out

    def upscales(self, item: EncodedJpeg) -> bool:
        """Whether the encoder's resize would enlarge ``item``: those take the CPU path.

        Enlarging, torch's bicubic (a = -0.75) is not Pillow's (a = -0.5; the two agree only
        when reducing, with ``antialias=True``): a 3x3 or a 1000x11 JPEG gave cosine 0.987
        against the CPU path. Such images are small, so decoding them on the CPU is cheap.
        """
        width, height = item.size
        if item.orientation in (5, 6, 7, 8):
            width, height = height, width
        resize = self.plan.resize
        if isinstance(resize, int):
            return min(width, height) < resize
        return height < resize[0] or width < resize[1]

    def _preprocess(self, items: list[EncodedJpeg]) -> list[torch.Tensor | None]:
        import torch

        oriented = [
            None if image is None else apply_orientation(image, item.orientation)
            for item, image in zip(items, self._decode_chunk(items), strict=True)
        ]
        out: list[torch.Tensor | None] = [None] * len(items)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(oriented):
            if image is not None:
                groups.setdefault(tuple(image.shape), []).append(i)
        # Images of one size are resized together; float copies stay within chunk_bytes.
        for shape, positions in groups.items():
            per_image = 4 * shape[0] * shape[1] * shape[2]
            for part in self._chunks(positions, [per_image] * len(positions)):
                batch = torch.stack([oriented[i] for i in part])
                for i, row in zip(part, self.plan.apply(batch, self.reduce_to), strict=True):
                    out[i] = row
        return out

    def _decode_chunk(self, chunk: list[EncodedJpeg]) -> list[torch.Tensor | None]:
        import torch

        tensors = [torch.frombuffer(bytearray(item.data), dtype=torch.uint8) for item in chunk]
        device = torch.device(self.device)
        try:
            return list(_decode_jpeg(tensors, device))
        except Exception:
            if len(tensors) == 1:
                return [None]
        # One bad file fails the whole batched call: find it by decoding one at a time.
        results: list[torch.Tensor | None] = []
        for tensor in tensors:
            try:
                results.append(_decode_jpeg([tensor], device)[0])
            except Exception:
                results.append(None)
        return results

    def _chunks(self, items: Sequence[Any], costs: Sequence[int]) -> list[list[Any]]:
        chunks: list[list[Any]] = [[]]
        used = 0
        for item, cost in zip(items, costs, strict=True):
            if chunks[-1] and used + cost > self.chunk_bytes:
                chunks.append([])
                used = 0
            chunks[-1].append(item)
            used += cost
        return [c for c in chunks if c]
