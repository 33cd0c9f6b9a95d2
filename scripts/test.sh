#!/usr/bin/env bash
# Installs what the tests need (ffmpeg and chromium from Debian, the package with its test extras,
# the browser players from npm) and runs every quality gate: ruff check, ruff format --check, mypy
# (strict on the package, relaxed on tests/), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, only those missing: ffmpeg for the media tests, chromium (and npm, if the
# machine has no Node.js) for the real-player tests in tests/service/test_browser.py, nginx for
# the cache in front of the origin in tests/service/test_cdn.py, postgresql for the catalog.
DEBS=()
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then DEBS+=(ffmpeg); fi
if ! command -v chromium >/dev/null; then DEBS+=(chromium); fi
if ! command -v npm >/dev/null; then DEBS+=(npm); fi
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then DEBS+=(nginx); fi
# PostgreSQL for the catalog's fleet tests (tests/support/postgres.py starts its own server).
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    DEBS+=(postgresql)
fi
if [ "${#DEBS[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${DEBS[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# The players (tests/browser/package-lock.json), reinstalled only when the lock file changed.
LOCK_SUM="$(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)"
if [ "$(cat tests/browser/node_modules/.origin-lock.sha256 2>/dev/null)" != "$LOCK_SUM" ]; then
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error </dev/null)
    echo "$LOCK_SUM" > tests/browser/node_modules/.origin-lock.sha256
fi

echo "== ruff check";          python3 -m ruff check origin tests scripts
echo "== ruff format --check"; python3 -m ruff format --check origin tests scripts
echo "== mypy";                python3 -m mypy
echo "== pytest";              python3 -m pytest "$@"
