"""Test media made with ffmpeg at test time (cached per session by the fixtures in conftest)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"


def make_mp4(
    path: Path,
    *,
    seconds: float = 4.0,
    size: str = "320x180",
    fps: int = 25,
    gop: int = 50,
    bframes: int = 2,
    bitrate: str = "300k",
    audio: bool = True,
    video: bool = True,
    sample_rate: int = 48000,
    faststart: bool = True,
    extra: tuple[str, ...] = (),
) -> Path:
    """Encode an H.264/AAC MP4 with fixed, aligned keyframes (every ``gop`` frames)."""
    cmd = [FFMPEG, "-nostdin", "-v", "error", "-y"]
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"]
    if audio:
        cmd += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate={sample_rate}:duration={seconds}",
        ]
    if video:
        cmd += [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-b:v",
            bitrate,
            "-g",
            str(gop),
            "-keyint_min",
            str(gop),
            "-sc_threshold",
            "0",
            "-bf",
            str(bframes),
        ]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "64k", "-ac", "2"]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    cmd += [*extra, str(path)]
    subprocess.run(cmd, check=True)
    return path


def probe_frames(path: str, stream: str = "v") -> list[dict[str, str]]:
    """ffprobe's packet list for one stream type, as dicts of strings."""
    out = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=pts,dts,duration,size,flags",
            "-of",
            "csv=p=0:nk=0",
            path,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        if not line.strip():
            continue
        rows.append(dict(kv.split("=", 1) for kv in line.split(",") if "=" in kv))
    return rows


def decode_errors(path_or_url: str, *extra_in: str) -> str:
    """Decode fully with ffmpeg; return what it printed at level error (empty when clean)."""
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", *extra_in, "-i", path_or_url, "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and not proc.stderr:
        return f"ffmpeg exited {proc.returncode}"
    return proc.stderr.strip()
