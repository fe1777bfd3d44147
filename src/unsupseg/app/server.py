"""The page's web server: Flask routes over a :class:`~unsupseg.app.workspace.Workspace`.

Every route answers JSON or a file. A bad request (a non-image, a huge image, an empty
scribble, an option out of range, an unknown id) answers ``{"error": message}`` with
status 400 or 404, which the page shows as a message; an unexpected failure answers one
line with status 500 and is logged, never a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import logging
import re
import socket
from typing import Any

import numpy as np
from PIL import Image

from unsupseg.app.workspace import DOWNLOADS, SCRIBBLE_COLOURS, VIEWS, Workspace, scribble_from_rgba
from unsupseg.errors import ConfigError, UnsupsegError
from unsupseg.regions import connected_leaves
from unsupseg.samples import SAMPLE_NAMES
from unsupseg.version import __version__

log = logging.getLogger("unsupseg")

__all__ = ["MAX_UPLOAD_BYTES", "create_app", "is_loopback", "make_server"]

#: Largest upload the server reads, in bytes.
MAX_UPLOAD_BYTES = 256 * 1024 * 1024


def _import_flask() -> Any:
    try:
        import flask
    except ImportError:
        raise ConfigError(
            "the web page needs Flask: pip install 'unsupseg[app]' (or pip install flask)"
        ) from None
    return flask


def _safe(name: str) -> str:
    """``name`` for a download's file name: letters, digits, ``.``, ``_`` and ``-``."""
    kept = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return kept or "image"


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _decode_scribble(value: Any, size: tuple[int, int]) -> np.ndarray:
    """A scribble layer sent as a PNG data URL, as class ids (255 where undrawn)."""
    if not isinstance(value, str) or not value.startswith("data:image/png;base64,"):
        raise ConfigError("the scribble must be sent as a PNG data URL")
    try:
        data = base64.b64decode(value.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as layer:
            if layer.size != size:
                raise ConfigError(
                    f"the scribble is {layer.size[0]}x{layer.size[1]}, the image "
                    f"{size[0]}x{size[1]}; load the image again"
                )
            rgba = np.asarray(layer.convert("RGBA"))
    except ConfigError:
        raise
    except (binascii.Error, OSError, ValueError) as exc:
        raise ConfigError(f"the scribble could not be decoded ({exc})") from None
    return scribble_from_rgba(rgba, SCRIBBLE_COLOURS)


def create_app(workspace: Workspace | None = None) -> Any:
    """The page's Flask application over ``workspace`` (a new empty one by default).

    Routes: ``/`` (the page), ``POST /api/sample``, ``POST /api/upload``,
    ``GET /api/image/<id>.png``, ``POST /api/run``, ``GET /api/job/<id>``,
    ``POST /api/job/<id>/cancel``, ``GET /api/result/<id>/view.png`` (query:
    ``threshold`` or ``k``, ``mode``; the headers ``X-Labels`` and ``X-Regions`` give the
    number of ids and of 4-connected regions, ``X-Threshold`` the default threshold when
    neither is asked)
    and ``GET /api/result/<id>/<file>`` for the files of
    :data:`~unsupseg.app.workspace.DOWNLOADS`.
    """
    flask = _import_flask()
    from werkzeug.exceptions import HTTPException

    workspace = workspace or Workspace()
    app = flask.Flask("unsupseg.app")
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_BYTES
    app.config["workspace"] = workspace

    def error(message: str, status: int = 400) -> Any:
        return flask.jsonify(error=message), status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if exc.code == 413:
            limit = flask.current_app.config["MAX_CONTENT_LENGTH"]
            return error(f"the file is larger than the page's limit of {limit:,} bytes", 413)
        return error(f"{exc.code} {exc.name}", exc.code or 500)

    @app.errorhandler(UnsupsegError)
    def bad_input(exc: UnsupsegError) -> Any:
        return error(" ".join(str(exc).split()))

    @app.errorhandler(KeyError)
    def unknown(exc: KeyError) -> Any:
        return error(str(exc.args[0]) if exc.args else "not found", 404)

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Any:
        log.exception("the page's request failed")
        return error(f"internal error: {' '.join(str(exc).split())[:300]}", 500)

    def parameters() -> dict[str, Any]:
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ConfigError("the request must be a JSON object")
        return body

    @app.get("/")
    def page() -> Any:
        colours = ["#{:02x}{:02x}{:02x}".format(*colour) for colour in SCRIBBLE_COLOURS]
        return flask.render_template(
            "index.html", version=__version__, samples=SAMPLE_NAMES,
            methods=workspace.methods, colours=colours, downloads=DOWNLOADS, views=VIEWS,
        )  # fmt: skip

    @app.post("/api/sample")
    def sample() -> Any:
        return flask.jsonify(workspace.add_sample(str(parameters().get("name", ""))))

    @app.post("/api/upload")
    def upload() -> Any:
        file = flask.request.files.get("file")
        if file is None:
            raise ConfigError("no file was sent: choose an image file")
        return flask.jsonify(workspace.add_upload(file.filename or "upload", file.read()))

    @app.get("/api/image/<image>.png")
    def picture(image: str) -> Any:
        return flask.Response(_png(workspace.picture(image)), mimetype="image/png")

    @app.post("/api/run")
    def run() -> Any:
        body = parameters()
        image = str(body.get("image", ""))
        scribble = body.get("scribble")
        if scribble is not None:
            height, width = workspace.picture(image).shape[:2]
            scribble = _decode_scribble(scribble, (width, height))
        job = workspace.start(
            image, str(body.get("method", "")), max_iter=body.get("max_iter", 200),
            max_side=body.get("max_side", 256), fine_iter=body.get("fine_iter", 0),
            seed=body.get("seed", 0), scribble=scribble,
        )  # fmt: skip
        return flask.jsonify(job.status())

    @app.get("/api/job/<job>")
    def job_status(job: str) -> Any:
        return flask.jsonify(workspace.job(job).status())

    @app.post("/api/job/<job>/cancel")
    def cancel(job: str) -> Any:
        return flask.jsonify(workspace.cancel(job).status())

    def cut(result: str) -> tuple[Any, np.ndarray, str]:
        found = workspace.result(result)
        args = flask.request.args
        k = args.get("k") or None
        threshold = args.get("threshold") or None
        return found, found.view(threshold=threshold, k=k), args.get("mode", "boundaries")

    @app.get("/api/result/<result>/view.png")
    def view(result: str) -> Any:
        found, labels, mode = cut(result)
        response = flask.Response(_png(found.render(labels, mode)), mimetype="image/png")
        response.headers["X-Labels"] = str(int(np.unique(labels).size))
        response.headers["X-Regions"] = str(int(connected_leaves(labels).max()) + 1)
        if not flask.request.args.get("k") and not flask.request.args.get("threshold"):
            response.headers["X-Threshold"] = f"{found.default_threshold:g}"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/api/result/<result>/<kind>")
    def download(result: str, kind: str) -> Any:
        if kind not in DOWNLOADS:
            raise ConfigError(f"unknown download {kind!r}; choose from {', '.join(DOWNLOADS)}")
        found, labels, mode = cut(result)
        return flask.Response(
            found.download(kind, labels, mode), mimetype=DOWNLOADS[kind][0],
            headers={"Content-Disposition": f'attachment; filename="{_safe(found.name)}-{kind}"'},
        )  # fmt: skip

    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8765) -> Any:
    """A threaded WSGI server for ``app`` on ``host``:``port`` (0: any free port), not yet
    serving: call its ``serve_forever()``; ``server.port`` is the port it bound."""
    from werkzeug.serving import make_server as werkzeug_server

    try:
        return werkzeug_server(host, port, app, threaded=True)
    except (OSError, socket.gaierror, SystemExit) as exc:
        raise ConfigError(f"cannot serve on {host}:{port} ({exc}); choose another --port") from None
