"""Vendor the browser players the built-in page serves (origin/service/player/vendor/).

The versions are the ones pinned in tests/browser/package-lock.json (the same players the
browser tests run): ``npm ci`` there installs them, checking each tarball against the lock's
sha512 integrity, and this script copies the minified builds the page loads, every license of
the packages they bundle, and writes ``players.json`` (name, version, license, SHA-256 of each
file). The result is committed, so the package installs and the page plays with no network.

    python scripts/vendor_players.py          # after changing tests/browser/package.json
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPM_DIR = ROOT / "tests" / "browser"
VENDOR = ROOT / "origin" / "service" / "player" / "vendor"

# The files the page loads, by package (paths inside the package).
BUILDS = {
    "hls.js": ["dist/hls.min.js"],
    "dashjs": ["dist/modern/umd/dash.all.min.js", "dist/modern/umd/dash.mss.min.js"],
    "shaka-player": ["dist/shaka-player.compiled.js"],
}
# A package's license and notice files, whatever their case (npm keeps "license", "LICENSE.md"...).
LICENSE_FILE = re.compile(r"(licen[cs]e|notice)([.-].*)?", re.IGNORECASE)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def closure(lock: dict[str, dict[str, object]], names: list[str]) -> list[str]:
    """The packages ``names`` and everything they depend on, as node_modules paths."""
    seen: list[str] = []
    todo = [f"node_modules/{n}" for n in names]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.append(key)
        deps = lock[key].get("dependencies") or {}
        assert isinstance(deps, dict)
        todo.extend(f"node_modules/{d}" for d in deps)
    return sorted(seen)


def main() -> int:
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NPM_DIR, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lock = json.loads((NPM_DIR / "package-lock.json").read_text())["packages"]
    shutil.rmtree(VENDOR, ignore_errors=True)
    (VENDOR / "licenses").mkdir(parents=True)
    players = {}
    for name, files in BUILDS.items():
        pkg = NPM_DIR / "node_modules" / name
        entry: dict[str, object] = {"version": lock[f"node_modules/{name}"]["version"]}
        out = {}
        sources = {}
        notices = []
        for rel in files:
            src = pkg / rel
            shutil.copyfile(src, VENDOR / src.name)
            out[src.name] = sha256(src)
            sources[src.name] = rel
            notice = src.with_name(src.name + ".LICENSE.txt")  # what the minifier kept aside
            if notice.exists():
                shutil.copyfile(notice, VENDOR / "licenses" / f"{name}-{notice.name}")
                notices.append(f"licenses/{name}-{notice.name}")
        entry["files"] = out
        entry["sources"] = sources  # where in the npm package each file is
        entry["notices"] = notices
        players[name] = entry
    bundled = {}
    for key in closure(lock, list(BUILDS)):
        name = key.removeprefix("node_modules/")
        info = lock[key]
        found = sorted(p for p in (NPM_DIR / key).iterdir() if LICENSE_FILE.fullmatch(p.name))
        if not found:
            print(f"{name}: no license file in the package", file=sys.stderr)
            return 1
        kept = []
        for p in found:
            target = VENDOR / "licenses" / f"{name.replace('/', '+')}-{p.name}"
            shutil.copyfile(p, target)
            kept.append(f"licenses/{target.name}")
        bundled[name] = {"version": info["version"], "license": info.get("license"), "files": kept}
    manifest = {"players": players, "packages": bundled}
    (VENDOR / "players.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for name, entry in players.items():
        print(f"{name} {entry['version']}: {', '.join(entry['files'])}")  # type: ignore[arg-type]
    print(f"{len(bundled)} packages' licenses in {VENDOR.relative_to(ROOT)}/licenses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
