#!/usr/bin/env python3
"""Regenerate the built-in sample ladder in origin/sample/ (committed; needs ffmpeg with libx264).

Three H.264/AAC renditions, 10 s, keyframes every 2 s in all of them (aligned, as an ABR encoder
makes them), B-frames, AAC-LC stereo tagged English. About 1.5 MB in all.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "origin" / "sample"
LADDER = [("240p", "426x240", "150k"), ("360p", "640x360", "300k"), ("480p", "854x480", "600k")]
SECONDS = 10
FPS = 24


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, size, bitrate in LADDER:
        out = OUT / f"sample_{name}.mp4"
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-v", "error", "-y",
                "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={FPS}:duration={SECONDS}",
                "-f", "lavfi",
                "-i", f"sine=frequency=440:beep_factor=4:sample_rate=48000:duration={SECONDS}",
                "-c:v", "libx264", "-preset", "slow", "-profile:v", "main", "-pix_fmt", "yuv420p",
                "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate,
                "-g", str(2 * FPS), "-keyint_min", str(2 * FPS), "-sc_threshold", "0", "-bf", "2",
                "-x264-params", "threads=1",
                "-c:a", "aac", "-b:a", "64k", "-ac", "2", "-metadata:s:a:0", "language=eng",
                "-movflags", "+faststart", "-map_metadata", "-1", "-fflags", "+bitexact",
                str(out),
            ],
            check=True,
        )  # fmt: skip
        print(out, out.stat().st_size)


if __name__ == "__main__":
    main()
