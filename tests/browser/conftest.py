"""Browser tests of the admin: Playwright for Python driving the system's Chromium (Debian's
``chromium`` package; nothing is downloaded) against a real stack.

They skip, saying why, when Chromium or Playwright is missing, unless ``CI`` is set: there
they must run, and fail when either is missing (``.ci/run`` installs Chromium).
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.console import Problems
from tests.browser.stack import Site, collect_static, running_site
from tests.support.platform import new_platform

#: The browser: Debian's chromium, or another Chromium named by CHROMIUM_PATH.
CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
#: Headless, and nothing phoned home: on a closed network Chromium's background services
#: only add refused connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
#: Milliseconds Playwright waits for an element, a navigation or an expectation.
ACTION_TIMEOUT_MS = 15_000
VIEWPORT = {"width": 1366, "height": 900}

_screenshot_dirs: list[Path] = []


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -r requirements-dev.txt)"
    return None


@pytest.fixture(scope="session")
def browser_or_skip() -> None:
    reason = missing()
    if reason and on_ci():
        pytest.fail(f"CI is set, so the browser tests must run: {reason}")
    if reason:
        pytest.skip(reason)


#: Playwright's sync API keeps an event loop running in the test's thread, where Django
#: refuses database calls unless told this is safe (the loop only drives the browser). Both
#: end with the module, so later tests run as usual.
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(scope="module")
def browser(browser_or_skip) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    before = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if before is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = before


@pytest.fixture(scope="session")
def static_root(browser_or_skip, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("static")
    collect_static(root, dict(os.environ))
    return root


def _site(tmp_path: Path, static_root: Path, celery: bool) -> Iterator[Site]:
    platform = new_platform(tmp_path, prefix="browser")
    platform.env.pop(ASYNC_UNSAFE, None)  # the test process's concern only
    with running_site(platform, static_root, celery=celery) as site:
        yield site


@pytest.fixture
def stack(browser_or_skip, transactional_db, tmp_path, static_root) -> Iterator[Site]:
    """gunicorn serving the admin, a celery worker on the test's queue, and celery beat."""
    yield from _site(tmp_path, static_root, celery=True)


@pytest.fixture
def web(browser_or_skip, transactional_db, tmp_path, static_root) -> Iterator[Site]:
    """gunicorn serving the admin, alone: enough for pages that only show what is stored."""
    yield from _site(tmp_path, static_root, celery=False)


@pytest.fixture
def site(request) -> Site:
    """The whole stack when the test asks for it, else the web server alone."""
    return request.getfixturevalue("stack" if "stack" in request.fixturenames else "web")


@pytest.fixture
def problems(site) -> Problems:
    return Problems(site.base_url)


@pytest.fixture
def page(browser, site, problems) -> Iterator[Any]:
    context = browser.new_context(base_url=site.base_url, viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    page = context.new_page()
    problems.watch(page)
    yield page
    context.close()


class Screenshots:
    """Numbered PNGs of a test's steps, in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def take(self, page: Any, step: str, full_page: bool = True) -> Path:
        """The whole page, or with ``full_page=False`` what the window shows (full width,
        several times faster on a long page)."""
        self.count += 1
        name = re.sub(r"[^\w-]+", "-", step).strip("-")
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def screenshots(request, tmp_path_factory) -> Screenshots:
    """Under BROWSER_SCREENSHOTS when set, else pytest's temporary folder; the path is
    printed (``pytest -s``) and named again in the terminal summary."""
    root = os.environ.get("BROWSER_SCREENSHOTS")
    base = Path(root) if root else tmp_path_factory.getbasetemp() / "screenshots"
    folder = base / re.sub(r"[^\w-]+", "-", request.node.name).strip("-")
    folder.mkdir(parents=True, exist_ok=True)
    _screenshot_dirs.append(folder)
    print(f"\nscreenshots: {folder}")
    return Screenshots(folder)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _screenshot_dirs:
        terminalreporter.write_sep("-", "browser screenshots")
        for folder in _screenshot_dirs:
            terminalreporter.write_line(str(folder))
