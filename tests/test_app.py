"""The web page's server and state without a browser: :mod:`unsupseg.app` through Flask's
test client, and ``unsupseg app`` as a user starts it."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tifffile
from conftest import band_image
from PIL import Image

pytest.importorskip("flask", reason="the page needs Flask (pip install '.[app]')")

from unsupseg.app import Workspace, create_app  # noqa: E402
from unsupseg.app.server import is_loopback  # noqa: E402
from unsupseg.app.workspace import SCRIBBLE_COLOURS, scribble_from_rgba  # noqa: E402
from unsupseg.cli import main  # noqa: E402
from unsupseg.errors import ConfigError  # noqa: E402
from unsupseg.regions import connected_leaves  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_url(rgba: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(_png_bytes(rgba)).decode()


def _scribble_layer(shape: tuple[int, int]) -> np.ndarray:
    """Two strokes: class 0 across the top band, class 1 across the bottom band."""
    rgba = np.zeros((*shape, 4), np.uint8)
    height, width = shape
    rgba[height // 6, width // 8 : -width // 8] = [*SCRIBBLE_COLOURS[0], 255]
    rgba[-height // 6, width // 8 : -width // 8] = [*SCRIBBLE_COLOURS[1], 255]
    return rgba


@pytest.fixture
def client():
    app = create_app(Workspace(max_pixels=512 * 512))
    return app.test_client()


def _upload(client, data: bytes, name: str = "image.png"):
    return client.post("/api/upload", data={"file": (io.BytesIO(data), name)})


def _finish(client, job: dict, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/job/{job['job']}").get_json()
        if status["state"] != "running":
            return status
        time.sleep(0.05)
    raise AssertionError(f"the run did not finish in {timeout} s: {status}")


def _run(client, image: str, method: str, **options) -> dict:
    response = client.post("/api/run", json={"image": image, "method": method, **options})
    assert response.status_code == 200, response.get_json()
    return _finish(client, response.get_json())


def _decode(data: bytes, kind: str) -> np.ndarray:
    if kind == "labels.png":
        return np.asarray(Image.open(io.BytesIO(data)))
    if kind == "labels.tif":
        return tifffile.imread(io.BytesIO(data))
    return np.load(io.BytesIO(data))


# --------------------------------------------------------------------------------------
# Scribbles drawn in a browser


def test_scribble_from_rgba_takes_the_nearest_colour_where_drawn():
    rgba = np.zeros((3, 4, 4), np.uint8)
    blend = (0.8 * SCRIBBLE_COLOURS[2] + 0.2 * 255).astype(np.uint8)  # an antialiased edge
    rgba[0, 0] = [*blend, 200]
    rgba[1, 1] = [*SCRIBBLE_COLOURS[5], 255]
    rgba[2, 2] = [*SCRIBBLE_COLOURS[1], 100]  # too faint: not drawn
    scribble = scribble_from_rgba(rgba)
    assert scribble[0, 0] == 2 and scribble[1, 1] == 5
    assert scribble[2, 2] == 255 and (scribble == 255).sum() == 10
    with pytest.raises(ConfigError, match="RGBA"):
        scribble_from_rgba(rgba[..., :3])


# --------------------------------------------------------------------------------------
# Images: samples, uploads and bad input


def test_page_and_samples(client):
    page = client.get("/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for method in ("hierarchy", "kanezaki2018", "tip2020", "dynaseg-fsf", "dynaseg-scf"):
        assert f'value="{method}"' in text
    assert 'id="scale"' in text and 'id="scribble"' in text
    info = client.post("/api/sample", json={"name": "coffee"}).get_json()
    assert (info["width"], info["height"]) == (600, 400)
    picture = client.get(f"/api/image/{info['image']}.png")
    assert Image.open(io.BytesIO(picture.data)).size == (600, 400)
    bad = client.post("/api/sample", json={"name": "nope"})
    assert bad.status_code == 400 and "unknown sample" in bad.get_json()["error"]
    assert client.post("/api/sample", data="x").status_code == 400


def test_uploads_read_any_image_and_refuse_bad_ones(client, tmp_path):
    rng = np.random.default_rng(0)
    image = band_image(rng, 24, 40)
    ok = _upload(client, _png_bytes(image), "bands.png").get_json()
    assert (ok["name"], ok["width"], ok["height"]) == ("bands", 40, 24)
    deep = _upload(client, _png_bytes(image[..., 0].astype(np.uint16) * 257), "deep.png")
    assert deep.status_code == 200 and deep.get_json()["width"] == 40

    def refused(data: bytes, name: str, pattern: str) -> None:
        response = _upload(client, data, name)
        assert response.status_code == 400
        message = response.get_json()["error"]
        assert re.search(pattern, message), message
        assert "Traceback" not in message and "/tmp" not in message and name in message

    refused(b"plain text, not pixels", "notes.png", "not an image")
    refused(_png_bytes(image)[:200], "cut.png", "truncated or corrupt|corrupt or truncated")
    refused(b"", "empty.png", "empty")
    big = np.zeros((600, 600, 3), np.uint8)  # 360000 pixels > the test page's 512 x 512
    refused(_png_bytes(big), "big.png", "more than")
    tifffile.imwrite(tmp_path / "bands.tif", rng.random((5, 16, 16)).astype(np.float32))
    refused((tmp_path / "bands.tif").read_bytes(), "bands.tif", "pages|bands|shape")
    frames = [Image.fromarray(image), Image.fromarray(image[::-1])]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    refused((tmp_path / "anim.gif").read_bytes(), "anim.gif", "2 frames; the page segments one")
    tifffile.imwrite(tmp_path / "f64.tif", rng.random((20, 30)))  # Pillow cannot decode it
    assert _upload(client, (tmp_path / "f64.tif").read_bytes(), "f64.tif").status_code == 200
    assert client.post("/api/upload", data={}).status_code == 400
    odd = _upload(client, _png_bytes(image), "my photo\u00e9; x=1.png").get_json()
    status = _run(client, odd["image"], "hierarchy")
    disposition = client.get(f"/api/result/{status['result']}/labels.png").headers
    assert disposition["Content-Disposition"] == 'attachment; filename="my_photo_x_1-labels.png"'


def test_upload_larger_than_the_limit_is_refused(client):
    client.application.config["MAX_CONTENT_LENGTH"] = 1000
    response = _upload(client, bytes(5000), "huge.png")
    assert response.status_code == 413 and "limit" in response.get_json()["error"]


def test_workspace_refuses_other_shapes():
    workspace = Workspace(max_pixels=100)
    with pytest.raises(ConfigError, match="grayscale, RGB or RGBA"):
        workspace.add_image(np.zeros((8, 8, 5)), "bands")
    with pytest.raises(ConfigError, match="at least 2x2"):
        workspace.add_image(np.zeros((1, 8, 3)), "line")
    with pytest.raises(ConfigError, match="limit of 100"):
        workspace.add_image(np.zeros((11, 10)), "big")
    assert workspace.add_image(np.zeros((10, 10)), "small")["width"] == 10


# --------------------------------------------------------------------------------------
# Runs and results


def test_hierarchy_result_cuts_by_scale_and_k_and_downloads(client):
    image = client.post("/api/sample", json={"name": "coffee"}).get_json()["image"]
    status = _run(client, image, "hierarchy")
    assert status["state"] == "done", status
    base = f"/api/result/{status['result']}"
    default = client.get(f"{base}/view.png")
    assert float(default.headers["X-Threshold"]) == pytest.approx(0.6875)
    counts = [int(client.get(f"{base}/view.png?threshold={t}").headers["X-Regions"])
              for t in (0.0, 0.3, 0.6, 0.9)]  # fmt: skip
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    seven = client.get(f"{base}/view.png?k=7")
    assert seven.headers["X-Regions"] == seven.headers["X-Labels"] == "7"
    assert Image.open(io.BytesIO(seven.data)).size == (600, 400)
    colours = client.get(f"{base}/view.png?k=7&mode=colours").data
    assert colours != seven.data
    files = {}
    for kind in ("labels.png", "labels.tif", "labels.npy"):
        response = client.get(f"{base}/{kind}?k=7")
        assert response.status_code == 200
        assert f'coffee-{kind}"' in response.headers["Content-Disposition"]
        files[kind] = _decode(response.data, kind)
    first = files["labels.png"]
    assert first.shape == (400, 600) and np.unique(first).size == 7
    assert all(np.array_equal(first, other) for other in files.values())
    assert connected_leaves(first).max() + 1 == 7  # 7 connected regions
    overlay = Image.open(io.BytesIO(client.get(f"{base}/overlay.png?k=7").data))
    assert overlay.size == (600, 400) and overlay.mode == "RGB"

    for query, pattern in (("k=100000", "n_regions must be"), ("k=2.5", "whole number"),
                           ("threshold=nan", "from 0 to 1"), ("threshold=2", "from 0 to 1"),
                           ("k=3&mode=x", "view must be")):  # fmt: skip
        response = client.get(f"{base}/view.png?{query}")
        assert response.status_code == 400 and re.search(pattern, response.get_json()["error"])
    assert client.get(f"{base}/labels.exe").status_code == 400
    missing = client.get("/api/result/nothing/view.png")
    assert missing.status_code == 404 and "load the image again" in missing.get_json()["error"]


def test_tip2020_with_scribbles_and_bad_scribbles(client):
    rng = np.random.default_rng(1)
    image = band_image(rng, 36, 48)
    key = _upload(client, _png_bytes(image)).get_json()["image"]
    layer = _scribble_layer((36, 48))
    # 80 iterations: at 30, 7 of 12 runs (seeds 0-5, both layouts) had a stroke still
    # under 75% one label; at 80 every stroke was at least 81%
    status = _run(client, key, "tip2020", max_iter=80, max_side=0, scribble=_data_url(layer))
    assert status["state"] == "done" and status["step"] >= 1 and status["total"] == 80
    labels = _decode(client.get(f"/api/result/{status['result']}/labels.npy?threshold=0").data,
                     "labels.npy")  # fmt: skip
    top, bottom = labels[36 // 6, 8:-8], labels[-36 // 6, 8:-8]
    majority = [np.bincount(stroke).argmax() for stroke in (top, bottom)]
    assert majority[0] != majority[1]
    assert (top == majority[0]).mean() > 0.75 and (bottom == majority[1]).mean() > 0.75
    plain = _run(client, key, "tip2020", max_iter=80, max_side=0)
    unguided = client.get(f"/api/result/{plain['result']}/labels.npy?threshold=0").data
    assert not np.array_equal(_decode(unguided, "labels.npy"), labels)  # the scribbles count

    def refused(pattern: str, **body) -> None:
        response = client.post("/api/run", json={"image": key, "method": "tip2020", **body})
        assert response.status_code == 400, response.get_json()
        assert re.search(pattern, response.get_json()["error"])

    refused("scribble is empty", scribble=_data_url(np.zeros((36, 48, 4), np.uint8)))
    refused("scribble is 10x10", scribble=_data_url(np.zeros((10, 10, 4), np.uint8)))
    refused("PNG data URL", scribble="data:text/plain,hello")
    refused("could not be decoded", scribble="data:image/png;base64,AAAA")
    refused("tip2020 only", method="kanezaki2018", scribble=_data_url(layer))
    refused("iterations must be a whole number", max_iter="nan")
    refused("working size must be at least 8", max_side=3)
    refused("full-size iterations must be 0 or more", fine_iter=-1)
    refused("full-size iterations must be a whole number", fine_iter="inf")
    refused("full-size iterations must be a whole number", fine_iter=True)
    refused("unknown method", method="magic")
    unknown = client.post("/api/run", json={"image": "nothing", "method": "tip2020"})
    assert unknown.status_code == 404


def test_per_image_result_starts_at_the_methods_own_labels(client):
    rng = np.random.default_rng(2)
    key = _upload(client, _png_bytes(band_image(rng, 32, 32))).get_json()["image"]
    status = _run(client, key, "dynaseg-fsf", max_iter=5, max_side=0)
    assert status["state"] == "done", status
    base = f"/api/result/{status['result']}"
    default = client.get(f"{base}/view.png")
    assert default.headers["X-Threshold"] == "0"
    own = _decode(client.get(f"{base}/labels.npy").data, "labels.npy")
    assert int(default.headers["X-Labels"]) == np.unique(own).size
    assert client.get(f"{base}/view.png?threshold=1").headers["X-Regions"] == "1"


def test_full_size_iterations_follow_the_working_size(client):
    rng = np.random.default_rng(3)
    key = _upload(client, _png_bytes(band_image(rng, 36, 48))).get_json()["image"]
    status = _run(client, key, "kanezaki2018", max_iter=3, max_side=16, fine_iter=2)
    # 3 iterations at 16 px, then 2 at 48x36, shown as one count
    assert (status["state"], status["step"], status["total"]) == ("done", 5, 5), status
    labels = _decode(client.get(f"/api/result/{status['result']}/labels.npy?threshold=0").data,
                     "labels.npy")  # fmt: skip
    assert labels.shape == (36, 48)


def test_runs_fail_with_a_message_cancel_and_replace_each_other(client, monkeypatch):
    rng = np.random.default_rng(3)
    key = _upload(client, _png_bytes(band_image(rng, 64, 64))).get_json()["image"]
    failed = _run(client, key, "kanezaki2018", max_iter=0)
    assert failed["state"] == "failed" and "max_iter" in failed["message"]

    long = client.post("/api/run", json={"image": key, "method": "kanezaki2018",
                                         "max_iter": 100000, "max_side": 0}).get_json()  # fmt: skip
    deadline = time.monotonic() + 60
    while client.get(f"/api/job/{long['job']}").get_json()["step"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cancelled = client.post(f"/api/job/{long['job']}/cancel").get_json()
    status = _finish(client, cancelled)
    assert status["state"] == "cancelled" and status["result"] is None
    assert status["step"] < 100000

    endless = {"image": key, "method": "tip2020", "max_iter": 100000, "max_side": 0}
    first = client.post("/api/run", json=endless).get_json()
    second = _run(client, key, "hierarchy")
    assert second["state"] == "done"
    assert _finish(client, first)["state"] == "cancelled"

    import unsupseg.app.workspace as workspace_module

    def broken(image):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(workspace_module, "hierarchy", broken)
    crashed = _run(client, key, "hierarchy")
    assert crashed["state"] == "failed" and crashed["message"] == "internal error: boom second line"


def test_trained_checkpoint_in_the_menu(tmp_path):
    rng = np.random.default_rng(4)
    (tmp_path / "images" / "train").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(band_image(rng)).save(tmp_path / "images" / "train" / f"{i}.png")
    out = tmp_path / "runs" / "tiny"
    assert main([
        "train", "--preset", "base-cifar10", "--q", "8", "--epochs", "1", "--batch-size", "4",
        "--dataset", "folder", "--data-root", str(tmp_path / "images"), "--split", "train",
        "--cache-dir", str(tmp_path / "cache"), "--slic-workers", "1", "--num-workers", "0",
        "--quiet", "--out", str(out),
    ]) == 0  # fmt: skip
    from unsupseg.cli.app import checkpoint_names

    names = checkpoint_names([out / "checkpoints" / "model-last.pt"])
    assert names == {"tiny": out / "checkpoints" / "model-last.pt"}
    app = create_app(Workspace(names, device="cpu"))
    client = app.test_client()
    assert 'value="checkpoint:tiny"' in client.get("/").get_data(as_text=True)
    key = _upload(client, _png_bytes(band_image(rng))).get_json()["image"]
    status = _run(client, key, "checkpoint:tiny", max_side=0)
    assert status["state"] == "done", status
    labels = _decode(client.get(f"/api/result/{status['result']}/labels.png").data, "labels.png")
    assert labels.shape == (32, 32)
    with pytest.raises(ConfigError, match="no such file"):
        checkpoint_names([tmp_path / "missing.pt"])
    last = out / "checkpoints" / "model-last.pt"
    two = checkpoint_names([last, last])
    assert list(two) == ["tiny", "tiny-2"]


# --------------------------------------------------------------------------------------
# The command


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_unsupseg_app_serves_the_page_on_loopback(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "unsupseg.cli", "app", "--port", "0"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        with urllib.request.urlopen(match.group(0), timeout=30) as response:
            assert response.status == 200 and b"unsupseg" in response.read()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_unsupseg_app_refuses_a_missing_checkpoint(capsys):
    assert main(["app", "--checkpoint", "no/such/model.pt"]) == 2
    assert "no such file" in capsys.readouterr().err
