"""The page in a real browser: headless Chromium (Debian's chromium and chromium-driver,
installed by .ci/run) driven by Selenium against ``unsupseg app``'s server on a free
port. Set UNSUPSEG_APP_SCREENSHOT=path.png to keep a screenshot of the page."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("flask", reason="the page needs Flask (pip install '.[app]')")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from unsupseg.app import Workspace, create_app  # noqa: E402
from unsupseg.app.server import make_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium and ChromeDriver are not installed (apt-get install chromium "
    "chromium-driver; .ci/run does)",
)


@pytest.fixture(scope="module")
def server():
    srv = make_server(create_app(Workspace()), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.port}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(argument)
    downloads = tmp_path_factory.mktemp("downloads")
    prefs = {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 120.0):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def _view_digest(driver) -> str:
    """The SHA-256 of the picture the page shows, fetched from its own URL."""
    data = driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(document.getElementById('view').src).then(r => r.arrayBuffer())
          .then(b => done(Array.from(new Uint8Array(b)))).catch(e => done(null));"""
    )
    assert data, "the page's picture could not be fetched"
    return hashlib.sha256(bytes(data)).hexdigest()


def _regions(driver, what: str = "regions") -> int:
    """The connected regions (or the labels) the page says its picture shows."""
    return int(driver.find_element(By.ID, "regions").get_attribute(f"data-{what}"))


def _status(driver) -> str:
    return driver.find_element(By.ID, "status").text


def _message(driver) -> str:
    box = driver.find_element(By.ID, "message")
    return box.text if box.is_displayed() else ""


def test_page_in_a_browser(server, browser):
    browser.get(server)
    assert "unsupseg" in browser.title

    # Load a sample.
    Select(browser.find_element(By.ID, "sample")).select_by_value("coffee")
    browser.find_element(By.ID, "load-sample").click()
    _wait(browser, lambda d: "600x400" in _status(d))
    shown = "return document.getElementById('view').naturalWidth"
    _wait(browser, lambda d: d.execute_script(shown) == 600)

    # Run the hierarchy: a result with its region count, at the dataset threshold.
    Select(browser.find_element(By.ID, "method")).select_by_value("hierarchy")
    browser.find_element(By.ID, "run").click()
    _wait(browser, lambda d: "regions" in d.find_element(By.ID, "regions").text)
    assert _message(browser) == ""
    before, regions = _view_digest(browser), _regions(browser)
    scale = float(browser.find_element(By.ID, "scale").get_attribute("value"))
    assert scale == pytest.approx(0.6875)

    # Move the slider to its finest end with the keyboard: more regions, a new picture.
    browser.find_element(By.ID, "scale").send_keys(Keys.HOME)
    _wait(browser, lambda d: _regions(d) > regions)
    _wait(browser, lambda d: _view_digest(d) != before, timeout=10)

    # K regions exactly.
    k = browser.find_element(By.ID, "k")
    k.send_keys("5", Keys.TAB)
    _wait(browser, lambda d: _regions(d) == 5)

    # tip2020 with no scribble: a message on the page, not a run.
    Select(browser.find_element(By.ID, "method")).select_by_value("tip2020")
    browser.find_element(By.ID, "clear-scribble").click()
    browser.find_element(By.ID, "run-scribble").click()
    _wait(browser, lambda d: "scribble is empty" in _message(d), timeout=10)

    # Draw two scribbles in two colours and run tip2020 on a small working size (a
    # larger one for the screenshot).
    shot = os.environ.get("UNSUPSEG_APP_SCREENSHOT")
    fields = (("max-iter", "60" if shot else "5"), ("max-side", "200" if shot else "64"),
              ("fine-iter", "0" if shot else "2"))  # fmt: skip
    for name, value in fields:
        field = browser.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    canvas = browser.find_element(By.ID, "scribble")
    width = canvas.size["width"]
    for colour, (y, dx) in enumerate(((-0.3, 0.3), (0.3, 0.3))):
        browser.find_elements(By.CSS_SELECTOR, "input[name=colour]")[colour].click()
        start = (int(-dx * width), int(y * canvas.size["height"]))
        (ActionChains(browser).move_to_element_with_offset(canvas, *start).click_and_hold()
         .move_by_offset(int(dx * width), 5).move_by_offset(int(dx * width), 0).release()
         .perform())  # fmt: skip
    browser.find_element(By.ID, "run-scribble").click()
    _wait(browser, lambda d: d.find_element(By.ID, "method").get_attribute("value") == "tip2020")
    _wait(browser, lambda d: "tip2020: done" in _status(d))
    if not shot:  # 5 iterations at 64 px, then 2 at full size, counted as one run
        assert " 7/7 iterations" in _status(browser)
    _wait(browser, lambda d: "regions" in d.find_element(By.ID, "regions").text)
    assert _message(browser) == ""
    assert _regions(browser) > 1
    if shot:
        browser.save_screenshot(shot)

    # Download the labels: they decode to the image's size.
    browser.find_element(By.CSS_SELECTOR, "a.download[data-kind='labels.png']").click()
    target = Path(browser.downloads) / "coffee-labels.png"
    deadline = time.monotonic() + 30
    while not target.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.is_file(), f"no download in {browser.downloads}: {os.listdir(browser.downloads)}"
    labels = np.asarray(Image.open(io.BytesIO(target.read_bytes())))
    assert labels.shape == (400, 600)
    assert np.unique(labels).size == _regions(browser, "labels")
