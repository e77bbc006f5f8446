"""Real servers on 127.0.0.1, started and stopped by PID: Chroma (``chroma run``) and Milvus
Lite (``milvus-lite server``)."""

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


class MilvusLiteServer:
    """A ``milvus-lite server`` process on 127.0.0.1 (never its default host 0.0.0.0)."""

    def __init__(self, data: Path) -> None:
        script = Path(sys.executable).with_name("milvus-lite")
        if not script.exists():
            pytest.fail(f"the milvus-lite script is missing: {script} (pip install milvus-lite)")
        data.mkdir(parents=True, exist_ok=True)
        self.data = data
        self.host, self.port = "127.0.0.1", _free_port()
        self.log_path = data / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [
                str(script),
                "server",
                "--data-dir",
                str(data / "db"),
                "--host",
                self.host,
                "--port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Wait for the TCP port first (pymilvus logs a traceback per refused connection)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"milvus-lite server exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"milvus-lite server did not listen within {timeout_s} s")
                time.sleep(0.1)
        from pymilvus import MilvusClient

        client = MilvusClient(uri=self.uri, timeout=10)
        client.list_collections()
        client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``(host, port)`` of a Milvus Lite server running for the whole session."""
    server = MilvusLiteServer(tmp_path_factory.mktemp("milvus-server"))
    try:
        server.wait_ready()
        yield server.host, server.port
    finally:
        server.stop()


@pytest.fixture
def own_milvus_server(tmp_path: Path) -> Iterator[MilvusLiteServer]:
    """A Milvus Lite server of this test alone (which the test may stop)."""
    server = MilvusLiteServer(tmp_path / "milvus-own")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
