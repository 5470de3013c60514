"""The portal in a real headless Chromium (Debian's, driven by Playwright) against a real
``modelplane up``.

Screenshots go to ``$MODELPLANE_SCREENSHOTS`` when it is set (``MODELPLANE_SCREENSHOTS=
docs/images/portal .venv/bin/pytest tests/portal`` refreshes the ones ``docs/portal.md`` shows),
else to the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.platform.conftest import Platform, running_in

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("the browser tests need Debian's chromium (scripts/test installs it)")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    failures: list[str] = []
    opened.on("pageerror", lambda error: failures.append(str(error)))
    yield opened
    context.close()
    assert failures == [], f"the page threw: {failures}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("MODELPLANE_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def iris(iris_dir: Path) -> Path:
    return iris_dir / "model.onnx"


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "portal")


def signed_in(page: Page, key: str) -> Page:
    """``page`` with ``key`` as the API key the portal sends (under ``modelplane up --auth``)."""
    page.add_init_script(f"sessionStorage.setItem('modelplane.apiKey', {json.dumps(key)})")
    return page
