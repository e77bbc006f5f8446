"""Find the runnable code blocks of Markdown files (the docs-as-tests collector's parser).

A fenced block is runnable when its info string is a Python language (``python``, ``py``) or a
shell language (``bash``, ``sh``, ``shell``, ``console``). Blocks without a language, or with
another one (``json``, ...), are output or diagrams and are not collected.

A marker, an HTML comment on the line just before the fence (blank lines allowed between),
changes how a block runs. It is invisible in rendered Markdown:

- ``<!-- docs-test: skip reason="needs a vision LLM API key" -->``: the block is not run; its
  test is reported as skipped with the reason in its id.
- ``<!-- docs-test: exit=5 -->``: every command of a shell block must exit with that status
  (default 0).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

PYTHON_LANGS = frozenset({"python", "py", "python3"})
SHELL_LANGS = frozenset({"bash", "sh", "shell", "console"})

_FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Command:
    """One shell command of a block (continuation lines joined) and its first line."""

    text: str
    line: int


@dataclass(frozen=True)
class Block:
    """One runnable fenced block."""

    path: Path  # the Markdown file
    name: str  # its path relative to the repository root, e.g. "docs/cli.md"
    lang: str  # "python" or "shell"
    info: str  # the fence's info string as written ("bash", "console", ...)
    line: int  # line number of the opening fence (1-based)
    code: str  # the block's text
    code_line: int  # line number of the block's first code line
    options: dict[str, str] = field(default_factory=dict)  # from a docs-test marker

    @property
    def label(self) -> str:
        return f"{self.name}:{self.line}-{self.info}"

    def commands(self) -> list[Command]:
        """Shell commands: one per non-comment line, ``\\`` continuations joined.

        In a ``console`` block only lines starting with ``$ `` are commands (the rest is output).
        """
        commands: list[Command] = []
        pending: list[str] = []
        start = 0
        for offset, raw in enumerate(self.code.splitlines()):
            line = raw.rstrip()
            if self.info == "console" and not pending:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if not pending:
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                start = self.code_line + offset
            if line.endswith("\\"):
                pending.append(line[:-1].rstrip())
                continue
            pending.append(line.strip() if len(pending) else line)
            commands.append(Command(" ".join(p.strip() for p in pending), start))
            pending = []
        if pending:
            commands.append(Command(" ".join(p.strip() for p in pending), start))
        return commands


def _parse_marker(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for token in shlex.split(text):
        key, _, value = token.partition("=")
        options[key] = value
    return options


def find_blocks(path: Path, root: Path) -> list[Block]:
    """Every runnable block of the Markdown file ``path``, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match["fence"], match["info"].strip().split(" ")[0].lower()
        end = i + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        lang = "python" if info in PYTHON_LANGS else "shell" if info in SHELL_LANGS else None
        if lang is not None:
            options: dict[str, str] = {}
            before = i - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            if before >= 0 and (marker := _MARKER.match(lines[before].strip())):
                options = _parse_marker(marker["body"])
            blocks.append(
                Block(
                    path=path,
                    name=path.relative_to(root).as_posix(),
                    lang=lang,
                    info=info,
                    line=i + 1,
                    code="\n".join(lines[i + 1 : end]) + "\n",
                    code_line=i + 2,
                    options=options,
                )
            )
        i = end + 1
    return blocks
