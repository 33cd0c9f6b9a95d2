"""Real ffmpeg as a live encoder pushing a ladder with fragmented-MP4 live ingest (Smooth ``isml``).

One ffmpeg process, ``-re``, lavfi ``testsrc2`` + ``sine`` (no input files), encodes once per
rendition (``split`` + ``scale`` in one ``-filter_complex``) with libx264 at a fixed GOP (``-g`` =
``-keyint_min`` = ``gop_seconds * fps``, ``-sc_threshold 0``) so every rendition's keyframes fall on
the same frames, and writes ONE ``-f ismv -movflags isml+frag_keyframe`` OUTPUT PER RENDITION:
each is its own long chunked POST to ``{base}/{channel}.isml/Streams(video_{height}p)``.
The FIRST rendition also carries the AAC audio track (one audio track for the channel, as an AMS
encoder sends it); the others are video only.

What ffmpeg 5.1 does, observed against tests/support/capture.py (and proved by
tests/service/test_live_encoders.py):
- every output opens its POST at start-up, in parallel: ``Transfer-Encoding: chunked``,
  ``Connection: close``, ``User-Agent: Lavf/...``, no Content-Length; the body starts with
  ``ftyp`` (isml) + ``moov`` and then ``moof``+``mdat`` pairs arrive at about real time, one per
  GOP per track;
- credentials: Basic given only in the URL (``http://user:pass@host``) is NOT sent until a 401
  challenge, and a chunked POST cannot be replayed, so the command adds ``-auth_type basic`` before
  each output: then ``Authorization: Basic ...`` is on the first request. Bearer:
  ``-headers "Authorization: Bearer X\\r\\n"`` per output, sent on the first request. (With
  credentials in the URL and no ``-auth_type``, ffmpeg sends ``Expect: 100-continue`` and no
  ``Authorization``);
- SIGINT (``stop()``): ffmpeg flushes, writes the trailing boxes (``mfra``) and ends each chunked
  body with the terminating zero chunk (the server sees a complete body); exit status 255.
  SIGKILL (``kill()``): the connections drop mid-body (the server sees a connection reset, an
  incomplete body); exit status -9;
- timestamps: Smooth 10 MHz; fragments carry ``tfxd`` (no ``tfdt``), one ``moof`` per track per
  GOP. Left alone, video starts at 0 and the AAC track at -213333 (its encoder delay, a negative
  start), so every output gets ``-output_ts_offset`` = ``ts_offset`` + AAC_PRIMING: audio then
  starts at ~0 and every video rendition at 213340, aligned (ffmpeg warns "starts with a nonzero
  dts", harmless). Audio fragments are cut at the video's keyframes on AAC frame boundaries, so
  their times drift from the video's by up to one AAC frame. A restarted ffmpeg starts at the same
  times again (a jump back) unless ``ts_offset`` continues the timeline:
  ``restart(continue_timeline=True)`` adds the wall time the last run ran, ``restart(ts_offset=)``
  sets it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, urlsplit, urlunsplit

from tests.support.media import FFMPEG

Rendition = tuple[int, int, int]  # width, height, video bits/s
# AAC's encoder delay (1024 samples at 48 kHz) makes ffmpeg's first audio fragment start at
# -213333 (10 MHz) with the video at 0: a negative tfxd time. Shifting every output by it (rounded
# up to ffmpeg's microseconds) starts the audio at ~0 and every video rendition at 213340.
AAC_PRIMING = 0.021334
LADDER: tuple[Rendition, ...] = ((426, 240, 300_000), (640, 360, 600_000), (854, 480, 1_000_000))


def stream_url(base_url: str, channel: str, height: int) -> str:
    return f"{base_url.rstrip('/')}/{channel}.isml/Streams(video_{height}p)"


def _with_userinfo(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


def ladder_command(
    base_url: str,
    channel: str,
    *,
    renditions: tuple[Rendition, ...] = LADDER,
    gop_seconds: float = 2,
    fps: int = 25,
    duration: float | None = None,
    auth: tuple[str, str] | None = None,
    bearer: str | None = None,
    ts_offset: float = 0.0,
    audio_bitrate: int = 64_000,
) -> list[str]:
    """The ffmpeg command line (see the module docstring for what it sends)."""
    width, height = max(r[0] for r in renditions), max(r[1] for r in renditions)
    limit = ["-t", f"{duration:g}"] if duration is not None else []
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "warning", "-re"]
    cmd += [*limit, "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}"]
    cmd += [*limit, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    n = len(renditions)
    labels = "".join(f"[s{i}]" for i in range(n))
    scales = ";".join(f"[s{i}]scale={w}:{h}[v{i}]" for i, (w, h, _) in enumerate(renditions))
    cmd += ["-filter_complex", f"[0:v]split={n}{labels};{scales}"]
    gop = str(round(gop_seconds * fps))
    for i, (_, h, bitrate) in enumerate(renditions):
        cmd += ["-map", f"[v{i}]"]
        if i == 0:
            cmd += ["-map", "1:a", "-c:a", "aac", "-b:a", str(audio_bitrate), "-ac", "2"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency"]
        cmd += ["-pix_fmt", "yuv420p", "-b:v", str(bitrate), "-maxrate", str(bitrate)]
        cmd += ["-bufsize", str(2 * bitrate), "-g", gop, "-keyint_min", gop, "-sc_threshold", "0"]
        # Every output shifted alike, so the renditions stay aligned (see AAC_PRIMING).
        cmd += ["-output_ts_offset", f"{ts_offset + AAC_PRIMING:.6f}"]
        cmd += ["-f", "ismv", "-movflags", "isml+frag_keyframe"]
        url = stream_url(base_url, channel, h)
        if auth is not None:
            # Sent proactively: a chunked POST cannot be replayed after a 401 challenge.
            cmd += ["-auth_type", "basic"]
            url = _with_userinfo(url, *auth)
        if bearer is not None:
            cmd += ["-headers", f"Authorization: Bearer {bearer}\r\n"]
        cmd.append(url)
    return cmd


class LiveEncoder:
    """ffmpeg running ``ladder_command`` (a context manager: killed on exit if still running)."""

    def __init__(self, base_url: str, channel: str, log_dir: Path, **options: object) -> None:
        self.base_url, self.channel, self.log_dir = base_url, channel, log_dir
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self._started = 0.0
        self._timeline = float(options.get("ts_offset", 0.0) or 0.0)  # type: ignore[arg-type]

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"ffmpeg-{self.channel}-{self.runs}.log"

    def command(self) -> list[str]:
        options = {**self.options, "ts_offset": self._timeline}
        return ladder_command(self.base_url, self.channel, **options)  # type: ignore[arg-type]

    def start(self) -> LiveEncoder:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stderr=err)
        self._started = time.monotonic()
        return self

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> int:
        """SIGKILL: the POSTs drop mid-body, no clean end."""
        self._signal(signal.SIGKILL)
        return self.wait_for_exit(10)

    def stop(self, timeout: float = 10) -> int:
        """SIGINT: ffmpeg flushes, writes its trailing boxes and ends each chunked body."""
        self._signal(signal.SIGINT)
        return self.wait_for_exit(timeout)

    def restart(
        self,
        *,
        continue_timeline: bool = False,
        ts_offset: float | None = None,
        clean: bool = False,
    ) -> LiveEncoder:
        """Kill (or stop, ``clean``) and start again. A new ffmpeg starts its timestamps where the
        first run did (a jump back); ``continue_timeline`` offsets the new run by the wall time the
        last one ran (``-re`` paces at real time), ``ts_offset`` sets the offset (seconds)."""
        ran = time.monotonic() - self._started
        self.stop() if clean else self.kill()
        if ts_offset is not None:
            self._timeline = ts_offset
        elif continue_timeline:
            self._timeline += ran
        return self.start()

    def wait_for_exit(self, timeout: float | None = None) -> int:
        """The exit status; raises (with ffmpeg's stderr) if it does not exit in time."""
        assert self.proc is not None, "not started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"ffmpeg still running; stderr:\n{self.stderr()}") from exc

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> LiveEncoder:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.running:
            self.kill()
