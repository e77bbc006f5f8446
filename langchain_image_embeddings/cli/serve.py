"""``imgemb serve``: the search page and JSON API over a store (extra ``[serve]``)."""

from __future__ import annotations

import argparse
import errno
import sys
import threading
from typing import Any

from langchain_image_embeddings.cli.common import (
    DEFAULT_STORE,
    STORE_HELP,
    add_model_options,
    model_kwargs,
    store_model,
)
from langchain_image_embeddings.cli.exit_codes import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
)

__all__ = ["add_serve_parser"]


def _cmd_serve(args: argparse.Namespace) -> int:
    from langchain_image_embeddings.errors import MissingDependencyError as _Missing
    from langchain_image_embeddings.serve.loading import LoadingApp
    from langchain_image_embeddings.serve.settings import ServeSettings

    if not 0 <= args.port <= 65535:
        print(f"error: --port must be in 0-65535, got {args.port}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import uvicorn
    except ImportError as exc:
        raise _Missing(
            "imgemb serve needs uvicorn: pip install 'langchain-image-embeddings[serve]'"
        ) from exc
    settings = ServeSettings(  # its limits are checked before the model loads
        max_k=args.max_k,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_upload_memory=int(args.max_upload_memory_mb * 1024 * 1024),
        image_root=args.image_root,
        allowed_hosts=tuple(args.allowed_host) if args.allowed_host else None,
        allow_delete=args.allow_delete,
        max_batch=args.max_batch,
    )
    try:
        port = _bindable_port(args.host, args.port)
    except OSError as exc:
        hint = (
            "another server is using it: choose another --port"
            if exc.errno == errno.EADDRINUSE
            else "check --host: an address of this machine, e.g. 127.0.0.1"
        )
        print(
            f"error: cannot listen on {args.host} port {args.port}: {exc.strerror or exc} ({hint})",
            file=sys.stderr,
        )
        return EXIT_ERROR
    spec = args.store

    def load() -> Any:  # on a thread, while the server already answers ("loading")
        # the imports too: langchain-core and torch take seconds before anything could listen
        from PIL import Image

        from langchain_image_embeddings.embeddings import ImageEmbeddings
        from langchain_image_embeddings.serve.app import create_app
        from langchain_image_embeddings.vectorstores import open_store, store_info

        model = args.model or store_model(spec)  # a missing store: exit 5 once stopped
        embeddings = ImageEmbeddings(model, model_kwargs=model_kwargs(args), device=args.device)
        store = open_store(spec, embeddings, create=False)
        app = create_app(store, settings, info=store_info(spec))
        embeddings.embed_images([Image.new("RGB", (64, 64))])  # load the weights now
        print(f"ready: {len(store)} images, {embeddings.model_id}", flush=True)
        return app

    app = LoadingApp(load, settings, title=f"{spec} · {args.model or 'the store model'}")
    _announce(args, port, "the model loads in the background")
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=port, log_level=args.log_level, lifespan="off")
    )

    def stop_if_failed() -> None:  # a store that cannot be served: say why and stop
        app.ready.wait()
        if app.error:
            server.should_exit = True

    threading.Thread(target=stop_if_failed, daemon=True).start()
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 3 when it cannot start: not our "model" code
        return EXIT_OK if exc.code in (None, 0) else EXIT_ERROR
    if app.exception is not None:
        raise app.exception  # main() gives it its exit code (a store error: 5, a model: 3)
    return EXIT_OK


def _announce(args: argparse.Namespace, port: int, what: str) -> None:
    """The URL being served (and a warning when it is reachable from other machines)."""
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can search "
            "the store and see its images",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {args.store} ({what}) at http://{shown}:{port}/  (Ctrl+C to stop)", flush=True)


def _bindable_port(host: str, port: int) -> int:
    """The port to serve on: ``port`` once checked free, or a free one for ``--port 0``.

    Checked before the "serving at" line, so a port in use is one clear error (exit 4), not
    a URL that never answers followed by uvicorn's exit status 3 (which reads "model error").

    Raises:
        OSError: ``host`` cannot be resolved or ``port`` cannot be bound.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        sock.bind((host, port))
        return int(sock.getsockname()[1])


def add_serve_parser(sub: Any) -> None:
    """``serve``: the search page and JSON API."""
    serve = sub.add_parser(
        "serve", help="serve a search page and JSON API over a store (extra [serve])"
    )
    serve.add_argument("--store", default=DEFAULT_STORE, metavar="SPEC", help=STORE_HELP)
    add_model_options(
        serve,
        default=None,
        model_help="override the store's recorded model (default: the store's model)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--max-k", type=int, default=100, help="largest k a search may ask for (default: 100)"
    )
    serve.add_argument(
        "--max-upload-mb",
        type=float,
        default=16.0,
        help="largest uploaded query image in MiB (default: 16)",
    )
    serve.add_argument(
        "--max-upload-memory-mb",
        type=float,
        default=512.0,
        help="memory all uploads being decoded at once may use, in MiB (estimated from each "
        "header; more uploads wait) (default: 512)",
    )
    serve.add_argument(
        "--image-root",
        metavar="DIR",
        default=None,
        help="make thumbnails only of stored files under this folder",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        default=None,
        help="a Host name to answer for besides loopback ones (a reverse proxy's "
        "images.example.org; '*.example.org' for a domain); repeatable",
    )
    serve.add_argument(
        "--allow-delete",
        action="store_true",
        help="let the page remove records from the index (near-duplicates view); "
        "files on disk are never deleted",
    )
    serve.add_argument(
        "--max-batch",
        type=int,
        default=16,
        metavar="N",
        help="most image queries embedded in one model call (micro-batching; 1: none; default: 16)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default: info)",
    )
    serve.set_defaults(func=_cmd_serve)
