"""Where the Ray of a run comes from, and what Ray prints.

:func:`ray_session` uses the Ray this process is connected to, joins an address (on
127.0.0.1 for a loopback one), or starts a private local Ray (:func:`start_local_ray`: no
dashboard, every server bound to 127.0.0.1, its temporary folder under the output folder,
token auth off so nothing is written to the home directory) and shuts it down afterwards.
:func:`ray_data_console` keeps Ray Data's own log lines off the console for a quiet run.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from langchain_image_embeddings.scale._deps import require_ray

__all__ = [
    "RaySessionOptions",
    "check_reachable",
    "is_loopback_address",
    "ray_data_console",
    "ray_session",
    "start_local_ray",
    "stop_local_ray",
]

#: Unix socket paths are limited to 107 bytes; Ray puts its sockets ~60 characters below
#: its temporary folder, so a longer folder is reached through a short link in the system
#: temp folder (:func:`_short_temp_dir`).
_MAX_TEMP_DIR = 44
#: Name prefix of those links (``imgemb-ray-`` and 12 hex digits of the folder's path).
_LINK_PREFIX = "imgemb-ray-"


def _short_temp_dir(wanted: Path) -> tuple[str, str | None]:
    """Ray's temp folder: ``wanted`` (created) when its path is short enough, else a short
    symbolic link to it in the system temp folder (returned second, to remove afterwards).

    Ray's files stay in ``wanted`` either way. The link's name is derived from ``wanted``'s
    path, so a run killed before it could remove its link leaves only that link, which the
    next run into the same folder replaces; links whose folder is gone (a killed run whose
    output was deleted since) are removed here too. Only where no such link can be made (a
    file of another user under that name) is a fresh folder of the system temp folder used
    (:func:`tempfile.mkdtemp`, removed afterwards; a killed run leaves it behind).
    """
    wanted.mkdir(parents=True, exist_ok=True)
    target = str(wanted.resolve())
    if len(target) <= _MAX_TEMP_DIR:
        return target, None
    temp = Path(tempfile.gettempdir())
    _remove_dangling_links(temp)
    digest = hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    link = temp / f"{_LINK_PREFIX}{digest}"
    with contextlib.suppress(OSError):
        if _is_own_link(link):
            link.unlink()  # left by a killed run into the same folder
        link.symlink_to(target, target_is_directory=True)
    if _is_own_link(link) and os.readlink(link) == target:
        return str(link), str(link)
    made = tempfile.mkdtemp(prefix=_LINK_PREFIX)
    return made, made


def _is_own_link(path: Path) -> bool:
    """Whether ``path`` is a symbolic link of this user (never follows it)."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISLNK(info.st_mode) and info.st_uid == os.getuid()


def _remove_dangling_links(temp: Path) -> None:
    """Remove this user's ``imgemb-ray-*`` links in ``temp`` whose folder no longer exists."""
    with contextlib.suppress(OSError):
        for entry in temp.glob(f"{_LINK_PREFIX}*"):
            if _is_own_link(entry) and not entry.exists():
                with contextlib.suppress(OSError):
                    entry.unlink()


def _remove_temp(path: str | None) -> None:
    """Remove what :func:`_short_temp_dir` made in the system temp folder: the link (not
    what it points to), or the fallback folder."""
    if path is None:
        return
    if os.path.islink(path):
        with contextlib.suppress(OSError):
            os.unlink(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


class RaySessionOptions(Protocol):
    """Where a run's Ray comes from: the part of
    :class:`~langchain_image_embeddings.scale.ray.RayOptions` that :func:`ray_session` reads
    (the session does not depend on the engine's other options).

    Example:
        >>> from langchain_image_embeddings.scale.ray import RayOptions
        >>> options: RaySessionOptions = RayOptions(address="auto")
        >>> options.address
        'auto'
    """

    @property
    def address(self) -> str | None:
        """``None``: start a local Ray; ``"auto"`` or ``"HOST:PORT"``: join a cluster."""

    @property
    def temp_dir(self) -> str | None:
        """Ray's temporary folder for a local Ray (``None``: ``OUT/_ray``)."""

    @property
    def local_cpus(self) -> int | None:
        """CPUs of a local Ray (``None``: all of this machine's)."""


@contextlib.contextmanager
def ray_session(options: RaySessionOptions, out_dir: Path) -> Iterator[Any]:
    """Use the Ray this process is connected to, join ``options.address``, or start a local
    Ray for the duration (shut down and its temp folder removed afterwards)."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if options.address is not None:
        # A private Ray on loopback (another process's start_local_ray): join it on
        # 127.0.0.1 too; Ray would otherwise turn 127.0.0.1 into the machine's own address.
        # The environment stays the caller's (the cluster's token auth, if any, applies).
        check_reachable(options.address)
        loopback = is_loopback_address(options.address)
        if loopback:
            _set_local_env({})
        try:
            ray.init(address=options.address, log_to_driver=False, logging_level=logging.WARNING)
            try:
                yield ray
            finally:
                ray.shutdown()
        finally:
            if loopback:
                _undo_local_env()
        return
    wanted = Path(options.temp_dir or out_dir / "_ray")
    temp, made = _short_temp_dir(wanted)
    try:
        start_local_ray(temp, num_cpus=options.local_cpus)
    except BaseException:
        _remove_temp(made)
        raise
    try:
        yield ray
    except BaseException:
        stop_local_ray()
        _remove_temp(made)
        raise  # a failed run keeps OUT/_ray (Ray's logs) for a look
    stop_local_ray()
    _remove_temp(made)
    shutil.rmtree(wanted, ignore_errors=True)


#: Environment of a private local Ray: token auth off (it would write a token into the home
#: directory), no usage reporting, and the node address taken as 127.0.0.1 (with Ray's
#: default, every Ray server listens on all interfaces and the node IP is the machine's).
_LOCAL_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}
_restore: list[tuple[dict[str, str | None], bool]] = []


def start_local_ray(temp_dir: str, *, num_cpus: int | None = None) -> None:
    """Start a private local Ray: no dashboard, 127.0.0.1 only, files under ``temp_dir``.

    Sets :data:`_LOCAL_ENV` for this process and the Ray processes it starts (undone by
    :func:`stop_local_ray`), so that every Ray server binds to 127.0.0.1 and nothing is
    written to the home directory.

    Example:
        .. code-block:: python

            start_local_ray("/tmp/imgemb-ray", num_cpus=2)
            stop_local_ray()
    """
    ray = require_ray()
    _set_local_env()
    try:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=temp_dir,
            log_to_driver=False,
            logging_level=logging.WARNING,  # no INFO banner: the command prints its own summary
        )
    except BaseException:
        _undo_local_env()
        raise


def stop_local_ray() -> None:
    """Shut down a Ray started by :func:`start_local_ray` and restore the environment."""
    ray = require_ray()
    ray.shutdown()
    _undo_local_env()


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Refuse a ``HOST:PORT`` Ray address where nothing listens: ``ray.init`` would retry
    it for minutes, printing a warning every few seconds (measured: over 200 s).
    ``"auto"`` and ``ray://`` addresses are left to Ray.

    Raises:
        ValueError: Nothing answers at ``HOST:PORT``.
    """
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ValueError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one "
            "(ray start --head) or correct the address (--ray-address)"
        ) from exc


def is_loopback_address(address: str) -> bool:
    """Whether a Ray address (``HOST:PORT``) names this machine's loopback interface.

    Example:
        >>> is_loopback_address("127.0.0.1:6379"), is_loopback_address("10.0.0.5:6379")
        (True, False)
    """
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "auto", a host name
        return False


def _set_local_env(environment: dict[str, str] = _LOCAL_ENV) -> None:
    """Set ``environment`` and take 127.0.0.1 as this node's IP (undone by
    :func:`_undo_local_env`)."""
    from ray._private import ray_constants

    saved = {k: os.environ.get(k) for k in environment}
    _restore.append((saved, ray_constants.ENABLE_RAY_CLUSTER))
    os.environ.update(environment)
    # Read once when ray was imported: this process must resolve its node IP to 127.0.0.1
    # too (ray.init(_node_ip_address="127.0.0.1") alone is turned into the machine's IP).
    ray_constants.ENABLE_RAY_CLUSTER = False


def _undo_local_env() -> None:
    if not _restore:
        return
    from ray._private import ray_constants

    env, flag = _restore.pop()
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    ray_constants.ENABLE_RAY_CLUSTER = flag


@contextlib.contextmanager
def ray_data_console(progress_bars: bool, console_logs: bool) -> Iterator[None]:
    """Ray Data's progress bars on or off and, without ``console_logs``, its console log
    lines ("Progress bars disabled", "Dataset ... execution finished") held back for the
    duration; its log file still gets them. The handlers' levels are restored afterwards.
    """
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = progress_bars
    for name in ("print_on_execution_start", "enable_operator_progress_bars"):
        if hasattr(ctx, name) and not progress_bars:
            setattr(ctx, name, False)
    # Ray Data logs to a console handler and a session-file handler of its own (the
    # "ray.data" logger does not propagate): only the console one is raised.
    consoles = [
        h
        for h in logging.getLogger("ray.data").handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    levels = [h.level for h in consoles]
    if not console_logs:
        for handler in consoles:
            handler.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)
