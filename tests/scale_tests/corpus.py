"""A small corpus for the scale tests: real photos (scikit-image) cut into ~200 small
images, a duplicate, and unreadable files of known error codes; and a tiny saved model.

Plain helpers (no fixtures) so that tests in other folders can build the same corpus.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

#: The unreadable files of :func:`write_corpus` and the code each must be reported with.
BAD_FILES = {
    "bad/truncated.jpg": "truncated",
    "bad/garbage.jpg": "unsupported_format",
    "bad/empty.png": "empty",
    "bad/text.png": "unsupported_format",
}
#: A byte-identical copy of one good image (one vector, two paths).
DUPLICATE = ("img/dup/copy-of-000.jpg", "img/p00/000.jpg")


def write_corpus(root: Path, count: int = 196, seed: int = 0) -> Path:
    """Write ``count`` small JPEG/PNG crops of the sample photos, a duplicate and the bad
    files of :data:`BAD_FILES` under ``root``; returns ``root``."""
    from langchain_image_embeddings.samples import sample_photos

    rng = random.Random(seed)
    photos = list(sample_photos().values())
    for n in range(count):
        photo = photos[n % len(photos)]
        w, h = photo.size
        side = rng.randint(min(w, h) // 3, min(w, h))
        x, y = rng.randint(0, w - side), rng.randint(0, h - side)
        size = rng.choice((48, 64, 80))
        image = photo.crop((x, y, x + side, y + side)).resize((size, size))
        folder = root / "img" / f"p{n // 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if n % 4 == 3:
            image.save(folder / f"{n:03d}.png")
        else:
            image.save(folder / f"{n:03d}.jpg", quality=90)
    (root / "img" / "dup").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / DUPLICATE[1], root / DUPLICATE[0])
    bad = root / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    full = (root / "img" / "p00" / "000.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (bad / "garbage.jpg").write_bytes(bytes(rng.randrange(256) for _ in range(3000)))
    (bad / "empty.png").write_bytes(b"")
    (bad / "text.png").write_text("this is not a picture\n")
    return root


def save_tiny_model(directory: Path) -> str:
    """Save timm's ``test_vit`` with seeded random weights; returns its ``local:`` spec.

    The spec goes through the real registry (``create_encoder("local:DIR")``) in any
    process, Ray actors included, with identical weights everywhere.
    """
    import torch

    from langchain_image_embeddings import create_encoder
    from langchain_image_embeddings.encoders.local import save_pretrained

    if not (directory / "config.json").is_file():
        torch.manual_seed(0)
        encoder = create_encoder("timm:test_vit", pretrained=None, allow_random_weights=True)
        save_pretrained(encoder, directory)
    return f"local:{directory}"


def good_files(root: Path) -> list[str]:
    """The readable images of a corpus, as the plan lists them (absolute, sorted walk)."""
    from langchain_image_embeddings.document_loaders import ImageDirectoryLoader

    bad = {str((root / b).resolve()) for b in BAD_FILES}
    return [str(p) for p in ImageDirectoryLoader(root).iter_paths() if str(p) not in bad]


def read_rows(out: Path) -> list[dict[str, object]]:
    """Every row of every shard in ``out``, in shard order (vectors as tuples)."""
    import pyarrow.parquet as pq

    from langchain_image_embeddings.scale import shard_files

    rows: list[dict[str, object]] = []
    for file in shard_files(out):
        rows.extend(pq.read_table(file).to_pylist())
    return rows


def search_results(store: object, queries: list[str], k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` (id, relevance rounded to 5 places) of each query image."""
    return [
        [
            (str(d.id), round(s, 5))
            for d, s in store.similarity_search_by_image_with_relevance_score(q, k=k)
        ]  # type: ignore[attr-defined]
        for q in queries
    ]


def listening_addresses(root_pid: int) -> set[str]:
    """IP addresses of the TCP sockets listened on by ``root_pid`` and its descendants (Linux
    ``/proc``; IPv4-mapped IPv6 addresses as IPv4)."""
    import ipaddress
    import os

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, []))
    inodes: set[str] = set()
    for pid in tree:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hexaddr = fields[1].split(":")[0]
            words = [bytes.fromhex(hexaddr[i : i + 8])[::-1] for i in range(0, len(hexaddr), 8)]
            raw = b"".join(words)
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address
            ip = ipaddress.IPv4Address(raw) if len(raw) == 4 else ipaddress.IPv6Address(raw)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            found.add(str(ip))
    return found
