#!/usr/bin/env bash
# Installs what the tests need (ffmpeg from Debian, the package with its test extras) and runs
# every quality gate: ruff check, ruff format --check, mypy (strict), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff check";          python3 -m ruff check origin tests scripts
echo "== ruff format --check"; python3 -m ruff format --check origin tests scripts
echo "== mypy";                python3 -m mypy
echo "== pytest";              python3 -m pytest "$@"
