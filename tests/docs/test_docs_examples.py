"""Every Python block and shell command of README.md and docs/*.md, run as a test.

Blocks are collected from the Markdown when pytest collects this module (a new example is
tested the day it is written), one test per block, with an id naming the file, the line of the
opening fence and the language (``README.md:40-python``) and, in brackets, everything the
collector did to the block: offline substitutions, preamble names, skipped commands and
their reasons (see ``tests/docs/offline.py`` for the tables, ``tests/docs/markdown.py`` for
the ``<!-- docs-test: ... -->`` markers).

The blocks of one Markdown file run in order in one working directory (a fresh copy of the
prepared files) and its Python blocks in one namespace, as a reader would run them. Running a
single test runs the earlier blocks of its file first. When a block fails after an earlier
block of the same file failed, its message says which one failed first.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import shlex
import subprocess
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.docs import offline
from tests.docs.markdown import Block, find_blocks

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_TIMEOUT_S = 300


def _collect() -> list[Block]:
    return [block for path in DOC_FILES for block in find_blocks(path, ROOT)]


BLOCKS = _collect()


# -- what applies to a block (pure: used for the ids) -------------------------------------------
def substitutions_for(block: Block) -> list[offline.Substitution]:
    return [s for s in offline.SUBSTITUTIONS if block.lang in s.langs and s.matches(block.code)]


def patches_for(block: Block) -> list[offline.Patch]:
    if block.lang != "python":
        return []
    return [p for p in offline.PATCHES if re.search(p.pattern, block.code)]


def preamble_names(block: Block) -> list[str]:
    if block.lang != "python":
        return []
    try:
        tree = ast.parse(block.code)
    except SyntaxError:
        return []
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return [name for name in offline.PREAMBLE if name in used]


def skip_reason(command: str) -> str | None:
    for pattern, reason in offline.SHELL_SKIPS:
        if re.search(pattern, command):
            return reason
    return None


def block_id(block: Block) -> str:
    notes: list[str] = []
    if "skip" in block.options:
        notes.append(f"skip: {block.options.get('reason') or 'no reason given'}")
    notes += [f"offline: {s.name}" for s in substitutions_for(block)]
    notes += [f"offline: {p.name}" for p in patches_for(block)]
    if names := preamble_names(block):
        notes.append("preamble: " + ", ".join(names))
    if block.lang == "shell":
        skipped: dict[str, list[str]] = {}
        for command in block.commands():
            if reason := skip_reason(command.text):
                skipped.setdefault(reason, []).append(" ".join(command.text.split()[:2]))
        notes += [f"skip {', '.join(dict.fromkeys(cmds))}: {why}" for why, cmds in skipped.items()]
    return block.label + (f"[{'; '.join(notes)}]" if notes else "")


# -- running ------------------------------------------------------------------------------------
@dataclass
class FileState:
    workspace: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)  # opening-fence lines of blocks run
    first_failure: str | None = None


class DocsRunner:
    """Session state: prepared files, tiny CLIP checkpoint, per-file workspaces, resources."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.template = offline.prepare_template(base / "template")
        self.remote = base / "remote"  # what the patched fetch_url serves
        self.remote.mkdir()
        for name in ("dog.png", "cat.jpg", "dog.jpg", "photo.jpg", "query.jpg"):
            source = self.template / ("photos/dog.png" if name == "dog.png" else name)
            (self.remote / name).write_bytes(source.read_bytes())
        self.checkpoint = offline.write_tiny_clip_checkpoint(base / "tiny-clip.safetensors")
        config_dir = offline.tiny_clip_config_dir(base / "open_clip_configs")
        self.env = offline.shell_env(offline.write_imgemb_shim(base / "bin", config_dir).parent)
        self.files: dict[str, FileState] = {}
        self.resources: dict[str, str] = {}  # started resources
        self.values: dict[str, str] = {}  # placeholders they provide ({chroma_port})
        self._stack = ExitStack()

    def close(self) -> None:
        self._stack.close()

    # resources started on first use, stopped at the end of the session
    def _require(self, need: str) -> None:
        if need in self.resources:
            return
        if need == "chroma_server":
            proc, port = offline.start_chroma_server(self.base / "chroma-server")
            self._stack.callback(offline.stop_process, proc)
            self.resources["chroma_server"] = str(port)
            self.values["chroma_port"] = str(port)
        else:  # pragma: no cover
            raise KeyError(need)

    def state(self, block: Block) -> FileState:
        if block.name not in self.files:
            slug = re.sub(r"[^A-Za-z0-9]+", "-", block.name).strip("-")
            workspace = self.base / "work" / slug
            offline.shutil.copytree(self.template, workspace)
            self.files[block.name] = FileState(workspace)
        return self.files[block.name]

    def run(self, block: Block) -> None:
        state = self.state(block)
        # Earlier blocks of the file first (when a test is selected on its own).
        earlier_blocks = [
            b
            for b in BLOCKS
            if b.name == block.name
            and b.line < block.line
            and b.line not in state.done
            and "skip" not in b.options
        ]
        for earlier in earlier_blocks:
            try:
                self._execute(earlier, state)
            except (Exception, pytest.skip.Exception) as exc:
                print(f"setup: earlier block {earlier.label} failed: {exc!r}")
        try:
            self._execute(block, state)
        except pytest.skip.Exception:
            raise
        except Exception as exc:
            if state.first_failure and state.first_failure != block.label:
                raise AssertionError(
                    f"{block.label} failed after an earlier block of {block.name} failed "
                    f"first: {state.first_failure} (fix that one first)"
                ) from exc
            raise

    def _execute(self, block: Block, state: FileState) -> None:
        state.done.add(block.line)
        try:
            for s in substitutions_for(block):
                if s.needs:
                    self._require(s.needs)
            if block.lang == "python":
                self._run_python(block, state)
            else:
                self._run_shell(block, state)
        except pytest.skip.Exception:
            raise
        except Exception:
            if state.first_failure is None:
                state.first_failure = block.label
            raise

    def _substitute(self, block: Block, quote: Any) -> str:
        values = {"tiny_clip_checkpoint": quote(str(self.checkpoint)), **self.values}
        source = block.code
        for s in substitutions_for(block):
            source = s.apply(source, values)
            print(f"offline substitution: {s.name} ({s.reason})")
        return source

    def _run_python(self, block: Block, state: FileState) -> None:
        source = self._substitute(block, repr)
        if source != block.code:
            print(f"--- source run for {block.label} ---\n{source}")
        with _chdir(state.workspace):
            for name in preamble_names(block):
                if name not in state.namespace:
                    state.namespace[name] = offline.PREAMBLE[name][1]()
                    print(f"preamble: {name} = {offline.PREAMBLE[name][0]}")
            tree = ast.parse(source, filename=str(block.path))
            ast.increment_lineno(tree, block.code_line - 1)
            code = compile(tree, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            with ExitStack() as stack:
                for patch in patches_for(block):
                    print(f"offline patch: {patch.name} ({patch.reason})")
                    stack.enter_context(offline.patched_fetch(self.remote))
                result = eval(code, state.namespace)
                if inspect.iscoroutine(result):
                    asyncio.run(result)

    def _run_shell(self, block: Block, state: FileState) -> None:
        expected = int(block.options.get("exit", "0"))
        skipped: list[str] = []
        ran = 0
        for command in block.commands():
            if reason := skip_reason(command.text):
                skipped.append(f"`{command.text}`: {reason}")
                print(f"not run: {command.text}  ({reason})")
                continue
            text = command.text
            for s in substitutions_for(block):
                values = {"tiny_clip_checkpoint": shlex.quote(str(self.checkpoint))}
                text = s.apply(text, {**values, **self.values})
            print(
                f"$ {text}" + (f"    # as written: {command.text}" if text != command.text else "")
            )
            try:
                proc = subprocess.run(
                    ["bash", "-c", text],
                    cwd=state.workspace,
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=SHELL_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired as exc:
                raise AssertionError(
                    f"{block.name}:{command.line}: `{command.text}` ran over {SHELL_TIMEOUT_S} s"
                ) from exc
            ran += 1
            print(proc.stdout, end="")
            print(proc.stderr, end="")
            if proc.returncode != expected:
                raise AssertionError(
                    f"{block.name}:{command.line}: `{command.text}` exited {proc.returncode} "
                    f"(expected {expected})\n--- stdout ---\n{proc.stdout[-3000:]}"
                    f"\n--- stderr ---\n{proc.stderr[-3000:]}"
                )
        if not ran:
            pytest.skip("; ".join(skipped) or "no commands")


@contextmanager
def _chdir(path: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture(scope="session")
def docs_runner(tiny_clip_name: str) -> Iterator[DocsRunner]:
    """The session's prepared files and state (``tiny_clip_name`` registers the tiny CLIP)."""
    with tempfile.TemporaryDirectory(prefix="docs-examples-") as base:
        runner = DocsRunner(Path(base))
        try:
            yield runner
        finally:
            runner.close()


def test_blocks_were_found() -> None:
    """The collector sees the docs (a broken parser must not make the suite vacuously green)."""
    labels = {b.name for b in BLOCKS}
    assert "README.md" in labels and len(BLOCKS) >= 20, sorted(labels)


@pytest.mark.parametrize("block", BLOCKS, ids=[block_id(b) for b in BLOCKS])
def test_doc_block(block: Block, docs_runner: DocsRunner) -> None:
    if "skip" in block.options:
        pytest.skip(block.options.get("reason") or "docs-test: skip")
    try:
        docs_runner.run(block)
    except (pytest.skip.Exception, AssertionError):
        raise
    except Exception as exc:
        # Show the failure at the doc's own line, not inside the collector.
        frames = [
            f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(block.path)
        ]
        where = f" at {block.name}:{frames[-1].lineno}: {frames[-1].line}" if frames else ""
        raise AssertionError(f"{block.label} raised {type(exc).__name__}{where}: {exc}") from exc
