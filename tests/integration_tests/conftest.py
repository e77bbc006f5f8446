"""A real Chroma server (``chroma run``) on 127.0.0.1, started and stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``(host, port)`` of a Chroma server running for the whole session."""
    import chromadb
    from chromadb.config import Settings

    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.fail(f"the chroma server script is missing: {chroma} (pip install chromadb)")
    data = tmp_path_factory.mktemp("chroma-server")
    host, port = "127.0.0.1", _free_port()
    log = open(data / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(data / "db"), "--host", host, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"chroma run exited with {proc.returncode}: {(data / 'server.log').read_text()[-2000:]}"
                )
            try:
                chromadb.HttpClient(
                    host=host, port=port, settings=Settings(anonymized_telemetry=False)
                ).heartbeat()
                break
            except Exception:
                if time.monotonic() > deadline:
                    pytest.fail("the Chroma server did not answer its heartbeat within 60 s")
                time.sleep(0.3)
        yield host, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()
