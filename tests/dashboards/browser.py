"""Headless Debian Chromium driven by Selenium (chromedriver from the same Debian package), for the UI tests:
the Dash dashboards are drawn by JavaScript after the page loads, so the tests read the live DOM."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def chrome(tmp: Path, width: int = 1600, height: int = 1100):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.fail(
            "Debian's chromium and chromium-driver are not installed: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}", f"--window-size={width},{height}",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    return driver


def wait_for(predicate: Callable[[], Any], timeout: float, every: float = 0.5, what: str = "") -> Any:
    """Poll until `predicate()` is truthy; return its value, or fail naming what was awaited."""
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        try:
            last = predicate()
        except Exception as exc:  # the DOM changes under us while Dash re-renders
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or predicate} (last: {last!r})")


def full_page_screenshot(driver, path: Path, width: int = 1600) -> None:
    """Resize the window to the whole page, then save a PNG of it."""
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 900)")
    driver.set_window_size(width, min(int(height) + 140, 6000))
    time.sleep(0.8)  # let Plotly re-layout the charts at the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))


def assert_non_trivial_png(path: Path) -> None:
    assert path.exists() and path.stat().st_size > 20_000, f"{path} missing or tiny"
    with Image.open(path) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colors is None or len(colors) > 50, f"{path} is nearly blank"
