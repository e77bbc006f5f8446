"""What the docs-as-tests collector does so that every example runs offline, declared here.

Everything a block gets that a reader would not is in one of four tables below, and each
test id names what applied to its block:

- :data:`SUBSTITUTIONS`: regex rewrites of a block's source, for models whose weights come
  from the hub and for a Chroma server address. The id says ``offline: <name>``; the
  rewritten source is printed with the test's output.
- :data:`PATCHES`: behaviour replaced while a Python block runs, without touching its text
  (``http(s)`` URLs). The id says ``offline: <name>``.
- :data:`SHELL_SKIPS`: shell commands that are not run, each with its reason (in the id:
  ``skip '<command>': <reason>``).
- :data:`PREAMBLE`: free names some Python snippets use as placeholders for "your image"
  (``pil_image``, ...); the id lists the ones a block uses (``preamble: ...``).

The working directory of each Markdown file (shared by its blocks, in order, as a reader
would run them) starts as a copy of :func:`prepare_template`'s folder: real photos from
scikit-image under the file names the docs use (see its docstring).

The tiny random CLIP: the architecture of ``tests/tiny_clip.json`` (registered with
``open_clip.add_model_config``, as ``tests/conftest.py`` does) with seeded random weights saved
once per session as an open_clip checkpoint (``.safetensors``). In-process blocks see the
registration of the conftest fixture; shell commands run ``imgemb`` through a shim first on
``PATH`` (:func:`write_imgemb_shim`) that registers the same architecture when open_clip is
imported and then runs the real ``langchain_image_embeddings.cli:main``. With an explicit
checkpoint path the model is the same in every process, so a store written by one command
is opened by the next.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import TINY_CLIP, TINY_CLIP_CONFIG

VENV_BIN = Path(sys.executable).parent
#: Placeholder in replacements: the session's tiny CLIP checkpoint (a quoted path).
CKPT = "{tiny_clip_checkpoint}"
TINY_SPEC = f"open_clip:{TINY_CLIP}"


@dataclass(frozen=True)
class Substitution:
    """A regex rewrite of a block's source (``langs``: "python" and/or "shell")."""

    name: str
    pattern: str
    replacement: str
    reason: str
    langs: tuple[str, ...]
    needs: str | None = None  # a session resource to start first ("chroma_server")

    def apply(self, source: str, values: dict[str, str]) -> str:
        template = self.replacement  # a re.sub template (\g<1> ...) with {placeholders}
        for key, value in values.items():
            template = template.replace("{" + key + "}", value.replace("\\", "\\\\"))
        return re.sub(self.pattern, template, source)

    def matches(self, source: str) -> bool:
        return re.search(self.pattern, source) is not None


_HUB_REASON = (
    "open_clip ViT-B-32 weights come from the Hugging Face hub (no network in tests); the "
    "tiny random CLIP has the same interface (image and text towers, 32-d)"
)

SUBSTITUTIONS: tuple[Substitution, ...] = (
    Substitution(
        name="default ImageEmbeddings() -> tiny random CLIP",
        # ImageEmbeddings() or ImageEmbeddings(kw=...): the default model, open_clip ViT-B-32.
        pattern=r"\bImageEmbeddings\((?=\s*(?:\)|(?!model=)[A-Za-z_]\w*=))",
        replacement=f'ImageEmbeddings("{TINY_SPEC}", model_kwargs={{"pretrained": {CKPT}}}, ',
        reason=_HUB_REASON,
        langs=("python",),
    ),
    Substitution(
        name="open_clip:ViT-B-32 -> tiny random CLIP",
        pattern=(
            r"\bImageEmbeddings\(\s*([\"'])open_clip:ViT-B-32\1"
            r"(?:\s*,\s*model_kwargs=\{\s*[\"']pretrained[\"']\s*:\s*[\"'][^\"']*[\"']\s*\})?"
        ),
        replacement=f'ImageEmbeddings("{TINY_SPEC}", model_kwargs={{"pretrained": {CKPT}}}',
        reason=_HUB_REASON,
        langs=("python",),
    ),
    Substitution(
        name="create_encoder(open_clip:ViT-B-32) -> tiny random CLIP",
        pattern=(
            r"\bcreate_encoder\(\s*([\"'])open_clip:ViT-B-32\1"
            r"(?:\s*,\s*pretrained=[\"'][^\"']*[\"'])?"
        ),
        replacement=f'create_encoder("{TINY_SPEC}", pretrained={CKPT}',
        reason=_HUB_REASON,
        langs=("python",),
    ),
    Substitution(
        name="--model open_clip:ViT-B-32 -> tiny random CLIP",
        pattern=r"--model[ =]open_clip:ViT-B-32(?:\s+--pretrained[ =]\S+)?(?=\s|$)",
        replacement=f"--model {TINY_SPEC} --pretrained {CKPT}",
        reason=_HUB_REASON,
        langs=("shell",),
    ),
    Substitution(
        name="--pretrained ViT-B-32 checkpoint -> tiny random CLIP checkpoint",
        pattern=r"--pretrained[ =]\S*vit-b-32\S*(?=\s|$)",
        replacement=f"--pretrained {CKPT}",
        reason="the docs' local ViT-B-32 checkpoint (/models/...) is not on this machine; "
        "the store being searched was indexed with the tiny CLIP checkpoint",
        langs=("shell",),
    ),
    Substitution(
        name="Chroma server 127.0.0.1:8000 -> a server started on a free port",
        pattern=r"(?<=127\.0\.0\.1)([\"']\s*,\s*|:)8000\b",
        replacement="\\g<1>{chroma_port}",
        reason="the example talks to a running `chroma run` server; the collector starts one "
        "on loopback (free port) for the session and stops it by PID",
        langs=("python", "shell"),
        needs="chroma_server",
    ),
)


@dataclass(frozen=True)
class Patch:
    """Behaviour replaced while a Python block whose source matches ``pattern`` runs."""

    name: str
    pattern: str
    reason: str


PATCHES: tuple[Patch, ...] = (
    Patch(
        name="http(s) URLs -> local photos (patched fetch_url)",
        pattern=r"[\"']https?://",
        reason="no network in tests: `langchain_image_embeddings.images._fetch.fetch_url` is replaced by "
        "one that returns the prepared photo named like the URL's last path segment; "
        "everything before it (allow_remote, scheme checks) runs as usual",
    ),
)

#: Shell commands that are not run: regex on the command -> reason (shown in the test id).
SHELL_SKIPS: tuple[tuple[str, str], ...] = (
    (r"^(pip|python -m pip|uv pip) install\b", "installs packages"),
    (r"^make test\b", "recursive (make test runs this suite)"),
    (r"^make demo\b", "recursive (builds .venv; its steps are docs/cli.md's quickstart)"),
)


def _preamble_pil_image() -> Any:
    from PIL import Image

    return Image.open(Path("photos/chelsea.jpg")).convert("RGB")


def _preamble_png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(Path("photos/coffee.jpg")).save(buffer, format="PNG")
    return buffer.getvalue()


def _preamble_numpy_array() -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(Path("photos/rocket.jpg")).convert("RGB"))


def _preamble_vision_llm() -> Any:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    return FakeListChatModel(responses=["The second photo shows a rocket on the launch pad."])


#: Free names of snippets -> (what it is, factory run in the block's working directory).
PREAMBLE: dict[str, tuple[str, Callable[[], Any]]] = {
    "pil_image": ("a PIL image (photos/chelsea.jpg)", _preamble_pil_image),
    "png_bytes": ("PNG-encoded bytes (photos/coffee.jpg)", _preamble_png_bytes),
    "numpy_array": ("an HxWx3 uint8 array (photos/rocket.jpg)", _preamble_numpy_array),
    "vision_llm": (
        "a fake chat model (langchain_core FakeListChatModel) standing in for a vision LLM",
        _preamble_vision_llm,
    ),
}


# -- the prepared files -------------------------------------------------------------------------
def prepare_template(root: Path) -> Path:
    """Write the files the docs refer to into ``root`` (once per session) and return it.

    Real photos (scikit-image) under the names the docs use:

    - ``photos/``: ``imgemb samples photos`` output (8 photos, 32 transformed copies) plus
      ``photos/dog.png`` (coffee as PNG) and ``photos/query.jpg`` (chelsea, downscaled);
    - ``cat.jpg`` (chelsea), ``dog.jpg`` (coffee), ``photo.jpg`` (astronaut), ``query.jpg``
      (chelsea, cropped), ``a.jpg`` (rocket), ``b.png`` (coins as PNG), ``broken.jpg``
      (chelsea's first 3 KB: a truncated JPEG, as its name says);
    - ``photos_by_class/`` and ``catalogue/``: one folder per label (chelsea, coffee, rocket,
      astronaut), 10 views of the photo each (original, crop, flip, downscale, JPEG q35,
      5 more crops/rotations);
    - ``pairs.csv``: 24 ``(image, caption)`` rows over the photos;
    - ``old-langchain-index/``: a stock LangChain ``FAISS.save_local`` folder (pickle) of the 8
      photos with EfficientNet-Lite0 vectors.
    """
    from PIL import Image

    from langchain_image_embeddings.samples import TRANSFORMS, sample_photos, write_sample_photos

    write_sample_photos(root / "photos")
    photos = sample_photos()
    Image.open(root / "photos/coffee.jpg").save(root / "photos/dog.png")
    chelsea = photos["chelsea"]
    chelsea.resize((chelsea.width * 3 // 4, chelsea.height * 3 // 4)).save(
        root / "photos/query.jpg", quality=90
    )
    shutil.copy(root / "photos/chelsea.jpg", root / "cat.jpg")
    shutil.copy(root / "photos/coffee.jpg", root / "dog.jpg")
    shutil.copy(root / "photos/astronaut.jpg", root / "photo.jpg")
    shutil.copy(root / "photos/copies/chelsea-crop.jpg", root / "query.jpg")
    shutil.copy(root / "photos/rocket.jpg", root / "a.jpg")
    photos["coins"].save(root / "b.png")
    (root / "broken.jpg").write_bytes((root / "photos/chelsea.jpg").read_bytes()[:3000])

    for folder in ("photos_by_class", "catalogue"):
        for label in ("chelsea", "coffee", "rocket", "astronaut"):
            image = photos[label]
            views = {"original": image, **{t: fn(image) for t, fn in TRANSFORMS.items()}}
            w, h = image.size
            for i in range(5):
                box = (i * w // 20, (4 - i) * h // 20, w - (4 - i) * w // 25, h - i * h // 25)
                views[f"view{i}"] = image.crop(box).rotate(4 * i - 8)
            (root / folder / label).mkdir(parents=True, exist_ok=True)
            for name, view in views.items():
                view.save(root / folder / label / f"{name}.jpg", quality=90)

    _write_stock_langchain_faiss(root / "old-langchain-index", root / "photos")

    with open(root / "pairs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        captions = {
            "astronaut": "a portrait of an astronaut",
            "chelsea": "a cat",
            "coffee": "a cup of coffee",
            "rocket": "a rocket on a launch pad",
            "hubble_deep_field": "galaxies in deep space",
            "immunohistochemistry": "a stained tissue sample",
            "camera": "a man with a camera",
            "coins": "old coins",
        }
        for name, caption in captions.items():
            for suffix in ("", "-crop", "-flip"):
                path = f"photos/{name}.jpg" if not suffix else f"photos/copies/{name}{suffix}.jpg"
                writer.writerow([path, caption])
    return root


def _write_stock_langchain_faiss(folder: Path, photos: Path) -> None:
    """A folder as stock LangChain ``FAISS.save_local`` writes it (index.faiss + index.pkl),
    with EfficientNet-Lite0 vectors of the 8 original photos, page_content = their paths."""
    import warnings

    from langchain_image_embeddings import ImageEmbeddings

    with warnings.catch_warnings():  # "langchain-community is being sunset": not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.vectorstores import FAISS

    lite0 = ImageEmbeddings("timm:efficientnet_lite0", device="cpu")
    paths = sorted(str(p) for p in photos.glob("*.jpg"))
    vectors = lite0.embed_image(uris=paths)
    store = FAISS.from_embeddings(
        list(zip(paths, vectors, strict=True)), lite0, metadatas=[{"source": p} for p in paths]
    )
    store.save_local(str(folder))


def write_tiny_clip_checkpoint(path: Path) -> Path:
    """Seeded random weights of the registered tiny CLIP as an open_clip ``.safetensors``."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


_SHIM = '''#!{python}
"""imgemb for the docs tests: registers the tiny test CLIP when open_clip is imported."""
import importlib.abc
import importlib.util
import sys


class _RegisterTinyClip(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "open_clip":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            module.add_model_config({config_dir!r})

        spec.loader.exec_module = exec_and_register
        return spec


sys.meta_path.insert(0, _RegisterTinyClip())
from langchain_image_embeddings.cli import main  # noqa: E402

sys.exit(main())
'''


def write_imgemb_shim(bin_dir: Path, config_dir: Path) -> Path:
    """An ``imgemb`` executable in ``bin_dir`` (put first on ``PATH``); see the module doc."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "imgemb"
    shim.write_text(_SHIM.format(python=sys.executable, config_dir=str(config_dir)))
    shim.chmod(0o755)
    return shim


def tiny_clip_config_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(TINY_CLIP_CONFIG, root / f"{TINY_CLIP}.json")
    return root


def shell_env(shim_bin: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(shim_bin), str(VENV_BIN), env.get("PATH", "")])
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
    )
    env.pop("PYTHONPATH", None)
    return env


@contextmanager
def patched_fetch(remote_dir: Path) -> Iterator[None]:
    """``fetch_url`` returns ``remote_dir / <last path segment of the URL>``."""
    from urllib.parse import urlsplit

    from langchain_image_embeddings.errors import ImageLoadError
    from langchain_image_embeddings.images import _fetch as fetch

    original = fetch.fetch_url

    def fake_fetch_url(url: str, limits: Any = None) -> bytes:
        candidate = remote_dir / Path(urlsplit(url).path).name
        if not candidate.is_file():
            raise ImageLoadError(url, "offline docs test: no local stand-in", "fetch_failed")
        return candidate.read_bytes()

    fetch.fetch_url = fake_fetch_url  # type: ignore[assignment]
    try:
        yield
    finally:
        fetch.fetch_url = original  # type: ignore[assignment]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_chroma_server(path: Path, timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], int]:
    """``chroma run`` on loopback and a free port; returns once its heartbeat answers."""
    import chromadb

    port = _free_port()
    env = shell_env(VENV_BIN)
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "chroma"),
            "run",
            "--path",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chroma run exited with {proc.returncode}")
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
            return proc, port
        except Exception:
            time.sleep(0.3)
    stop_process(proc)
    raise RuntimeError(f"chroma run did not answer on port {port} within {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
