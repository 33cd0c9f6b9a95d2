"""Screenshot the built-in player page for the README (docs/player.png).

    origin serve &                      # the built-in sample
    python scripts/screenshot_page.py   # [--base http://127.0.0.1:8080] [--out docs/player.png]

Debian's Chromium through Playwright, as the browser tests drive it: the sample in HLS (fMP4)
with hls.js, a few seconds in, so the figures under the video are filled.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "player.png")
    parser.add_argument("--way", default="HLS (fMP4) · AES-128")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    assert chromium, "apt-get install chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(args.base + "/")
        page.click('#titles button[data-title="sample"]')
        page.select_option("#way", label=args.way)
        page.click("#play")
        page.wait_for_function("() => document.getElementById('video').currentTime > 0.5")
        time.sleep(args.seconds)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
