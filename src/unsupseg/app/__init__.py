"""A local web page for segmenting one image at a time (``unsupseg app``, extra ``[app]``).

The page loads a sample or an uploaded image, runs a method (the hierarchy, a trained
checkpoint or a per-image method) in the background with progress and cancel, shows the
result over the image, cuts it at any scale or into K regions with a slider, takes
scribbles for ``tip2020``, and downloads the labels (PNG, TIFF, NPY) and the overlay.

:mod:`~unsupseg.app.workspace` holds the state and the runs with no web code;
:mod:`~unsupseg.app.server` serves them with Flask (one small page, plain JavaScript, no
build step and nothing fetched from the internet).
"""

from __future__ import annotations

import logging
import threading
import webbrowser
from collections.abc import Mapping
from pathlib import Path

from unsupseg.app.server import create_app, is_loopback, make_server
from unsupseg.app.workspace import Workspace

__all__ = ["Workspace", "create_app", "serve"]

log = logging.getLogger("unsupseg")


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    checkpoints: Mapping[str, str | Path] | None = None,
    max_pixels: int = 2048 * 2048,
    device: str | None = None,
    open_browser: bool = False,
) -> None:
    """Serve the page until interrupted (Ctrl-C).

    Parameters
    ----------
    host : str
        Address to bind: ``127.0.0.1`` (this machine only) by default. Any other address
        lets other machines use the page and its CPU; it is logged as a warning.
    port : int
        TCP port; 0 picks a free one.
    checkpoints : mapping of str to path, optional
        Trained models offered in the method menu, by name.
    max_pixels : int
        Largest image the page accepts.
    device : str, optional
        Where the networks run (default: CUDA when available, else CPU).
    open_browser : bool
        Open the page in the default browser once it is served.
    """
    if not is_loopback(host):
        log.warning("serving on %s: other machines can reach the page", host)
    workspace = Workspace(checkpoints, max_pixels=max_pixels, device=device)
    server = make_server(create_app(workspace), host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.port}/"
    log.info("serving the page at %s (Ctrl-C stops it)", url)
    print(f"unsupseg app: {url}", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()
