"""scripts/locustfile.py: 50 player-like viewers for 30 s, VOD and live, without one failure."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import token_server
from tests.support.server import ROOT, SAMPLE_DIR, run_server, sample_config

pytestmark = pytest.mark.slow
LOCUSTFILE = ROOT / "scripts" / "locustfile.py"
# sample_config's AES-128 "bbb" for the HLS viewers, the same clear for DASH and Smooth (which
# AES-128 assets refuse), and looped as the live channel.
MORE = f"""
[[assets]]
name = "clear"
files = [{", ".join(f'"{SAMPLE_DIR / f"sample_{n}.mp4"}"' for n in ("240p", "360p", "480p"))}]
segment_duration = 4.0
[[channels]]
name = "tv"
loop = true
asset = "clear"
"""


def locust(
    host: str,
    out: Path,
    *,
    users: int,
    seconds: int,
    channels: bool = True,
    failing: bool = False,
    **more: str,
) -> dict[str, dict[str, str]]:
    """Run the locustfile headless on ``host`` (MORE's assets, and its channel if
    ``channels``; ``more``: ORIGIN_* settings): its stats rows by "type name". Unless
    ``failing``, locust must exit 0 (no failure)."""
    env = {
        **os.environ, "ORIGIN_HLS_ASSETS": "bbb", "ORIGIN_CLEAR_ASSETS": "clear",
        "ORIGIN_CHANNELS": "tv" if channels else "", "ORIGIN_SESSION": "12",
        **{f"ORIGIN_{k.upper()}": v for k, v in more.items()},
    }  # fmt: skip
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
        "-r", str(users), "-t", f"{seconds}s", "--host", host, "--csv", str(out / "run"),
        "--only-summary", "--exit-code-on-error", "1",
    ]  # fmt: skip
    out.mkdir(exist_ok=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 90)
    with (out / "run_stats.csv").open() as f:
        rows = {f"{r['Type']} {r['Name']}": r for r in csv.DictReader(f)}
    assert failing or done.returncode == 0, done.stderr[-3000:]
    return rows


def test_fifty_viewers_of_every_kind_play_30_s_vod_and_live_without_a_failure(
    tmp_path: Path,
) -> None:
    cfg = sample_config(tmp_path, "access_log = false", more=MORE)
    with run_server("--config", str(cfg)) as server:
        rows = locust(server.base, tmp_path, users=50, seconds=30)
    total = rows[" Aggregated"]
    assert int(total["Failure Count"]) == 0, {k: r["Failure Count"] for k, r in rows.items()}
    for name in (
        "GET segment (ts)", "GET segment (mp4)", "GET key", "GET init (mp4)",
        "GET MPD (mpd-time-csf)", "GET Smooth manifest", "GET media playlist (m3u8-aapl)",
        "viewer startup", "viewer played_kbps",
    ):  # fmt: skip
        assert int(rows[name]["Request Count"]) > 0, name
    assert int(rows["GET segment (mp4)"]["Request Count"]) > 100


def test_a_segment_that_does_not_decrypt_is_a_failure() -> None:
    # In a subprocess: importing locust patches the standard library for gevent.
    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "scripts")!r})
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
import locustfile
key, iv = bytes(range(16)), bytes(16)
p = padding.PKCS7(128).padder()
clear = p.update(b"x" * 1000) + p.finalize()
enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
data = enc.update(clear) + enc.finalize()
locustfile._check_padding(data, key, iv)
for bad in (bytes(16), None):
    try:
        locustfile._check_padding(data if bad else data[:-3], bad or key, iv)
    except locustfile.Broken as e:
        print("refused:", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("refused:") == 2, out.stdout


@pytest.mark.parametrize("where", ["header", "query"])
def test_viewers_present_a_configured_token_for_keys_and_without_it_fail(
    tmp_path: Path, where: str
) -> None:
    cfg = sample_config(tmp_path, "access_log = false", more=MORE)
    cfg.write_text(cfg.read_text() + token_server.config_text().split("\n", 3)[3])
    token = token_server.make_jwt()  # the "premium" policy of the "secure" asset's key
    with run_server("--config", str(cfg)) as server:
        ok = locust(
            server.base, tmp_path, users=6, seconds=10, channels=False, hls_assets="secure",
            token=token, token_in=where,
        )  # fmt: skip
        refused = locust(
            server.base, tmp_path / "x", users=6, seconds=8, channels=False, failing=True,
            hls_assets="secure",
        )  # fmt: skip
    assert int(ok[" Aggregated"]["Failure Count"]) == 0
    assert int(ok["GET key"]["Request Count"]) > 0
    assert int(refused["GET key"]["Failure Count"]) > 0  # 401 without the token
