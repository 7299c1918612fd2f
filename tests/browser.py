"""Headless Chromium for the page checks: load a tfaudio HTML page, collect console errors,
click, take screenshots. Uses Debian's chromium + chromium-driver (`make test` installs them)."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("needs chromium and chromedriver (make test installs them with apt-get)")
    return browser, driver


@contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium WebDriver that records the console; quits on exit."""
    pytest.importorskip("selenium", reason="needs selenium (the dev extra)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """Console messages at level SEVERE since the last call (JavaScript errors, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(driver, path: Path) -> None:
    driver.get(Path(path).resolve().as_uri())
