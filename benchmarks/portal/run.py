"""How fast the portal's pages become usable on the examples, beside the CLI showing the same.

    python -m benchmarks.portal.run [--loads 20]

One real ``modelplane up --examples`` on loopback. Debian's Chromium, driven by Playwright,
opens each page ``--loads`` times, each in a fresh browser context (empty cache). A page is
usable when its data is on screen and its controls work: the models page with a row for every
example, a model's page with its conditions and the "try it" request built from the model's
metadata, the apply page with its form. Times are the browser's own (``performance.now()``,
from navigation start). Beside them, the CLI commands that show the same in a terminal, from
process start to exit: ``modelplane get models -A -o wide`` and ``modelplane describe model
iris``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, sync_playwright

from benchmarks.platform.run import Up, wait

MODELS = "/apis/modelplane.io/v1alpha1/models"


PAGES = {"models list": ("#/", "models"), "model page (iris)": ("#/models/default/iris", "model"),
         "apply page": ("#/apply", "apply")}  # fmt: skip


def all_ready(up: Up) -> bool:
    items = httpx.get(up.api + MODELS).json()["items"]
    return bool(items) and all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in m["status"]["conditions"])
        for m in items
        if m.get("status")
    )


# Runs in the page from its first moment and notes when it became usable, by the page's clock,
# so that the driver's round trips do not count.
WATCH = """(() => {
  const checks = {
    models: () => document.querySelectorAll("tr[data-model]").length >= COUNT,
    model: () => document.querySelector("table.conditions tbody tr") &&
      (document.querySelector("#try-body")?.value || "").includes("inputs"),
    apply: () => document.querySelector("#manifest") !== null,
  };
  const timer = setInterval(() => {
    if (checks.KIND()) { window.usableAt = performance.now(); clearInterval(timer); }
  }, 2);
})();"""


def page_times(browser: Browser, url: str, kind: str, count: int, loads: int) -> list[float]:
    found = []
    for _ in range(loads):
        context = browser.new_context()
        context.add_init_script(WATCH.replace("COUNT", str(count)).replace("KIND", kind))
        page = context.new_page()
        page.goto(url)
        deadline = time.monotonic() + 10
        while (usable := page.evaluate("window.usableAt ?? null")) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} was not usable within 10 s")
            time.sleep(0.05)
        found.append(float(usable))
        context.close()
    return found


def cli_times(up: Up, args: list[str], runs: int) -> list[float]:
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "modelplane", *args, "--server", up.api],
                       check=True, capture_output=True)  # fmt: skip
        found.append((time.perf_counter() - started) * 1000)
    return found


def row(what: str, times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return f"| {what} | {statistics.median(times):.0f} | {p95:.0f} | {max(times):.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as work:
        up = Up(Path(work) / "state", "--examples")
        try:
            wait(lambda: all_ready(up), 600)
            count = len(httpx.get(up.api + MODELS).json()["items"])
            rows = [f"Examples served: {count} models.", "",
                    "| page | median ms | p95 ms | max ms |", "|---|---|---|---|"]  # fmt: skip
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                for what, (fragment, kind) in PAGES.items():
                    times = page_times(browser, f"{up.api}/{fragment}", kind, count, args.loads)
                    rows.append(row(f"portal: {what}", times))
                browser.close()
            rows.append(
                row(
                    "CLI: get models -A -o wide",
                    cli_times(up, ["get", "models", "-A", "-o", "wide"], args.loads),
                )
            )
            rows.append(row("CLI: describe model iris",
                            cli_times(up, ["describe", "model", "iris"], args.loads)))  # fmt: skip
            print("\n".join(rows))
        finally:
            up.stop()


if __name__ == "__main__":
    main()
