"""Start-up without the process around it, for scripts/bench.py's start-up rows: the config's
assets indexed by the server's own code (load_config + build_state, what ``origin serve`` runs
before it listens), each measurement in a fresh interpreter, imports not counted.

    python scripts/bench_startup.py [--assets 100]

- ``ladder_100x3_s``: 100 assets, each the bench ladder's 3 renditions (60 s, 4 s segments);
- ``two_hour_s``: one 2-hour title (160x90 H.264 + AAC, 4 s GOPs, made with ffmpeg once and
  cached beside the other bench media: about 80 MB, a few minutes to encode);
- ``*_cpu_s``: the same in CPU seconds of the process (steadier on a shared machine);
- ``*_first_master_ms``: the first HLS TS master playlist of the last asset afterwards (its
  BANDWIDTH figures are computed on first use, see origin.core.presentation.Deferred);
- ``per_asset_ms`` and ``catalog_10000_est_s``: the ladder's time per asset, and what 10,000
  such assets would take indexed at start-up the same way.

Each figure is the median of REPEATS fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import bench_assets
from bench_http import CACHE, ROOT

REPEATS = 3
TWO_HOURS = 7200

# Run in a fresh interpreter: imports first (not timed), then the server's load path.
_CHILD = """
import json, sys, time
from origin.core import manifests
from origin.core.urls import Format, Options
from origin.service.config import load_config
from origin.service.state import build_state
from pathlib import Path

cfg = load_config(Path(sys.argv[1]))
t0, c0 = time.perf_counter(), time.process_time()
state = build_state(cfg)
ready, cpu = time.perf_counter() - t0, time.process_time() - c0
assert not state.refused, state.refused
last = state.assets[cfg.assets[-1].name].presentation
t1 = time.perf_counter()
manifests.master_playlist(last, Options(Format.HLS_TS))
first = time.perf_counter() - t1
state.close()
print(json.dumps({"ready_s": ready, "cpu_s": cpu, "first_master_ms": 1000 * first}))
"""


def make_two_hour() -> Path:
    out = CACHE / "bench_two_hour.mp4"
    if not out.exists():
        CACHE.mkdir(exist_ok=True)
        print("making a 2-hour 160x90 bench title with ffmpeg (a few minutes)…", flush=True)
        tmp = out.with_suffix(".tmp.mp4")
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-v", "error", "-y",
                "-f", "lavfi", "-i", f"testsrc=size=160x90:rate=30:duration={TWO_HOURS}",
                "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={TWO_HOURS}",
                "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "50k",
                "-g", "120", "-keyint_min", "120", "-sc_threshold", "0",
                "-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart", str(tmp),
            ],
            check=True,
        )  # fmt: skip
        tmp.rename(out)
    return out


def _load(cfg: Path) -> dict[str, float]:
    """Median figures of REPEATS fresh interpreters indexing ``cfg``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = []
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(cfg)],
            capture_output=True, text=True, check=True, env=env, cwd=ROOT,
        ).stdout  # fmt: skip
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def measure_startup(n_assets: int = 100) -> dict[str, float]:
    ladder = bench_assets.make_ladder()
    many = _load(bench_assets.write_many(f"startup_{n_assets}", ladder, n_assets))
    two = CACHE / "startup_two_hour.toml"
    two.write_text(bench_assets.SERVER + bench_assets.asset("a0", [make_two_hour()]))
    long = _load(two)
    per_asset = many["ready_s"] / n_assets
    return {
        f"ladder_{n_assets}x3_s": many["ready_s"],
        f"ladder_{n_assets}x3_cpu_s": many["cpu_s"],
        "ladder_first_master_ms": many["first_master_ms"],
        "per_asset_ms": 1000 * per_asset,
        "catalog_10000_est_s": 10_000 * per_asset,
        "two_hour_s": long["ready_s"],
        "two_hour_cpu_s": long["cpu_s"],
        "two_hour_first_master_ms": long["first_master_ms"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assets", type=int, default=100)
    args = ap.parse_args()
    for key, value in measure_startup(args.assets).items():
        print(f"{key:32} {value:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
