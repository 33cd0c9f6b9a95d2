#!/usr/bin/env python3
"""Cold versus warm encrypted segments, in process (no HTTP): where the first request's time goes.

    python scripts/bench_cold.py [--repeats 5] [--profile ts|fmp4] [--big-only]

For the sample ladder (3 renditions, 4 s segments) and the 720p 4 Mbit/s bench asset (6 s
segments, made by ``bench_assets.make_big``), over every media segment of every rendition, in
HLS TS and in fMP4, measures the MB/s (decimal, of encrypted bytes out) of:

- warm: the clear segment is already built (the server's LRU hit): AES-128-CBC only;
- cold: plan the reads, read the spans (``storage``'s reader, as the executor runs it), mux,
  then encrypt, as ``app._clear_segment`` does on a miss;
- cold (loop): the same, but the reads go through ``storage.read_spans`` on a running event
  loop, thread hop included, one segment after the other.

and prints cold/warm. Each figure is the best of ``--repeats`` passes, warm and cold
interleaved, so a noisy neighbour slows both alike. ``--profile`` runs cProfile over the cold
path instead and prints its top entries. ``measure_cold()`` returns the figures for bench.py.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_assets import make_big as make_big_asset  # noqa: E402

from origin.core import pipeline  # noqa: E402
from origin.core.crypto import Aes128Cbc  # noqa: E402
from origin.core.urls import Format  # noqa: E402
from origin.service.memory import tune_malloc  # noqa: E402
from origin.service.storage import (  # noqa: E402
    SourceFile,
    close_all,
    load_movie,
    open_source,
    read_spans,
    read_spans_now,
)

KEY = bytes.fromhex("3c9f2bd4a1e0475e8a7f6b2c1d0e9f8a")
FORMATS = {"ts": Format.HLS_TS, "fmp4": Format.HLS_CMAF}


class Asset:
    """A loaded asset, as ``state.py`` loads one: open files, parsed index, presentation."""

    def __init__(self, name: str, paths: Sequence[Path], target: Fraction) -> None:
        self.files: list[SourceFile] = [open_source(p) for p in paths]
        self.pres = pipeline.prepare(name, [load_movie(f) for f in self.files], target)

    def refs(self, fmt: Format) -> list[pipeline.SegmentRef]:
        """Every media segment of every rendition in ``fmt`` (TS video carries the audio)."""
        p = self.pres
        rends = [("video", r) for r in p.video] + ([("audio", p.audio)] if p.audio else [])
        ref = pipeline.SegmentRef
        return [ref(fmt, track, r.id, k) for track, r in rends for k in range(len(r.seg))]

    def build(self, ref: pipeline.SegmentRef) -> bytes:
        plan = pipeline.plan_reads(self.pres, ref)
        return pipeline.build_segment(self.pres, ref, plan, read_spans_now(self.files, plan.spans))

    async def build_async(self, ref: pipeline.SegmentRef) -> bytes:
        plan = pipeline.plan_reads(self.pres, ref)
        chunks = await read_spans(self.files, plan.spans)
        return pipeline.build_segment(self.pres, ref, plan, chunks)

    def close(self) -> None:
        close_all(self.files)


def sample_asset() -> Asset:
    sample = ROOT / "origin" / "sample"
    paths = [sample / f"sample_{n}.mp4" for n in ("240p", "360p", "480p")]
    return Asset("sample", paths, Fraction(4))


def big_asset() -> Asset:
    return Asset("big", [make_big_asset()], Fraction(6))


def _timed(run: Callable[[], int]) -> tuple[int, float]:
    # CPU time of the process (all threads): a busy neighbour on this shared machine inflates
    # wall time far more than it does CPU time.
    t0 = time.process_time()
    n = run()
    return n, time.process_time() - t0


def passes(asset: Asset, fmt: Format, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` MB/s of warm, cold and cold-through-the-loop for ``fmt``."""
    refs = asset.refs(fmt)
    cipher = Aes128Cbc(KEY)
    clear = [asset.build(r) for r in refs]
    ivs = [r.sequence.to_bytes(16, "big") for r in refs]

    def warm() -> int:
        return sum(len(cipher.encrypt(c, iv)) for c, iv in zip(clear, ivs, strict=True))

    def cold() -> int:
        return sum(len(cipher.encrypt(asset.build(r), iv)) for r, iv in zip(refs, ivs, strict=True))

    async def cold_loop_async() -> int:
        n = 0
        for r, iv in zip(refs, ivs, strict=True):
            n += len(cipher.encrypt(await asset.build_async(r), iv))
        return n

    loop = asyncio.new_event_loop()
    try:
        best = {"warm": float("inf"), "cold": float("inf"), "cold_loop": float("inf")}
        size = 0
        for _ in range(repeats):
            for name, run in (
                ("warm", warm),
                ("cold", cold),
                ("cold_loop", lambda: loop.run_until_complete(cold_loop_async())),
            ):
                size, seconds = _timed(run)
                best[name] = min(best[name], seconds)
    finally:
        loop.close()
    out = {f"{k}_mbs": size / t / 1e6 for k, t in best.items()}
    out["ratio"] = out["cold_mbs"] / out["warm_mbs"]
    out["ratio_loop"] = out["cold_loop_mbs"] / out["warm_mbs"]
    out["segments"] = len(refs)
    out["avg_bytes"] = size / len(refs)
    return out


def measure_cold(repeats: int = 5, *, big: bool = True, sample: bool = True) -> dict[str, float]:
    """Flat figures ``{asset}_{ts|fmp4}_{warm_mbs|cold_mbs|cold_loop_mbs|ratio|...}``."""
    # The server's malloc settings: without them every big buffer is mapped fresh and page
    # faults, not muxing, dominate (and this process would not measure what the server does).
    tune_malloc()
    out: dict[str, float] = {}
    makers = [("sample", sample_asset)] * sample + [("big", big_asset)] * big
    for name, make in makers:
        asset = make()
        try:
            for label, fmt in FORMATS.items():
                for k, v in passes(asset, fmt, repeats).items():
                    out[f"{name}_{label}_{k}"] = v
        finally:
            asset.close()
    return out


def profile(fmt: Format, rounds: int, top: int) -> None:
    tune_malloc()
    assets = [sample_asset(), big_asset()]
    refs = [(a, r) for a in assets for r in a.refs(fmt)]
    cipher = Aes128Cbc(KEY)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(rounds):
        for a, r in refs:
            cipher.encrypt(a.build(r), r.sequence.to_bytes(16, "big"))
    prof.disable()
    for a in assets:
        a.close()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", choices=sorted(FORMATS))
    ap.add_argument("--rounds", type=int, default=3, help="passes over every segment (profile)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--big-only", action="store_true")
    args = ap.parse_args()
    if args.profile:
        profile(FORMATS[args.profile], args.rounds, args.top)
        return 0
    figures = measure_cold(args.repeats, sample=not args.big_only)
    print(f"in process, best of {args.repeats} passes over every segment; MB/s of encrypted bytes")
    head = f"{'asset':8} {'fmt':5} {'segs':>5} {'avg kB':>8} {'warm':>8} {'cold':>8}"
    print(f"{head} {'cold/warm':>9} {'cold(loop)':>10} {'ratio':>6}")
    for name in ("sample", "big"):
        for label in FORMATS:
            k = f"{name}_{label}_"
            if k + "ratio" not in figures:
                continue
            print(
                f"{name:8} {label:5} {figures[k + 'segments']:5.0f} "
                f"{figures[k + 'avg_bytes'] / 1000:8,.0f} {figures[k + 'warm_mbs']:8,.0f} "
                f"{figures[k + 'cold_mbs']:8,.0f} {figures[k + 'ratio']:9.2f} "
                f"{figures[k + 'cold_loop_mbs']:10,.0f} {figures[k + 'ratio_loop']:6.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
