"""Sources encrypted at rest (``origin encrypt``) serve exactly like their clear originals, in
every protocol and under delivery encryption, and a file that does not open is refused at load
with the reason while the rest serve."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin

import m3u8
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from origin.service.app import build_app
from origin.service.config import load_config
from origin.service.keys import commands, protection
from origin.service.served import STATE
from origin.service.state import build_state
from origin.service.storage import record_path
from tests.support.server import ROOT, SAMPLE_DIR, SAMPLE_KEY, SAMPLE_KID

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
NAMES = ("240p", "360p", "480p")


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample ladder encrypted at rest under a state folder's protection key."""
    root = tmp_path_factory.mktemp("at-rest")
    cert = protection.load_or_create(root / "state").cert
    for n in NAMES:
        commands.encrypt_file(SAMPLE_DIR / f"sample_{n}.mp4", root / f"enc_{n}.mp4", cert)
    return root


def _config(where: Path, state: Path, files: list[Path], more: str = "") -> Path:
    listed = ", ".join(f'"{f}"' for f in files)
    cfg = where / "origin.toml"
    cfg.write_text(
        f'[server]\nstate_dir = "{state}"\n'
        f'[[assets]]\nname = "bbb"\nfiles = [{listed}]\nsegment_duration = 4.0\n'
        f'protection = "aes-128"\nkey_id = "{SAMPLE_KID}"\nkey = "{SAMPLE_KEY.hex()}"\n'
        'dash = ["clear", "cenc"]\nsmooth = ["clear", "cenc"]\n' + more
    )
    return cfg


async def _client(aiohttp_client: MakeClient, cfg: Path) -> Client:
    return await aiohttp_client(build_app(build_state(load_config(cfg))))


async def _get(client: Client, path: str) -> bytes:
    r = await client.get(path)
    assert r.status == 200, (path, r.status, await r.text())
    return await r.read()


async def _everything(client: Client) -> dict[str, bytes]:
    """Every manifest, playlist, init and media segment of HLS TS and fMP4, and DASH/Smooth
    manifests with every Smooth fragment (clear and cenc), by path."""
    out: dict[str, bytes] = {}
    for fmt in ("m3u8-aapl", "m3u8-cmaf"):
        master_path = f"/bbb.ism/manifest(format={fmt})"
        master = m3u8.loads((await _get(client, master_path)).decode(), uri=master_path)
        for pl in master.playlists:
            path = urljoin(master_path, pl.uri)
            media = m3u8.loads((await _get(client, path)).decode())
            out[path] = b""
            for seg in media.segments:
                out[urljoin(path, seg.uri)] = await _get(client, urljoin(path, seg.uri))
            if media.segment_map:
                init = urljoin(path, media.segment_map[0].uri)
                out[init] = await _get(client, init)
    for fmt in ("mpd-time-csf", "mpd-time-cmaf", "mpd-time-csf,encryption=cenc"):
        out[fmt] = await _get(client, f"/bbb.ism/manifest(format={fmt})")
    smooth = (await _get(client, "/bbb.ism/manifest")).decode()
    out["smooth"] = smooth.encode()
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    for index in ET.fromstring(smooth).iter("StreamIndex"):
        kind = index.get("Type")
        t = 0
        times = []
        for c in index.iter("c"):
            t = int(c.get("t", t))
            times.append(t)
            t += int(c.get("d", "0"))
        for level in index.iter("QualityLevel"):
            for t in times:
                for enc in ("", ",encryption=cenc"):
                    path = (
                        f"/bbb.ism/QualityLevels({level.get('Bitrate')})/Fragments({kind}={t}{enc})"
                    )
                    out[path] = await _get(client, path)
    return out


async def test_a_ladder_encrypted_at_rest_serves_byte_identical_output_in_every_protocol(
    ladder: Path, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    clear_files = [SAMPLE_DIR / f"sample_{n}.mp4" for n in NAMES]
    enc_files = [ladder / f"enc_{n}.mp4" for n in NAMES]
    assert all(
        e.read_bytes()[:64] != c.read_bytes()[:64]
        for e, c in zip(enc_files, clear_files, strict=True)
    )
    clear = await _everything(
        await _client(aiohttp_client, _config(tmp_path / "a", ladder / "state", clear_files))
    )
    enc = await _everything(
        await _client(aiohttp_client, _config(tmp_path / "b", ladder / "state", enc_files))
    )
    assert len(clear) > 50  # 3 segments x 4 renditions x 2 HLS forms, 28 Smooth fragments…
    assert enc.keys() == clear.keys()
    # The cenc MPD's license URL names the request's host: each client has its own port.
    for got, client in ((clear, "a"), (enc, "b")):
        got["mpd-time-csf,encryption=cenc"] = re.sub(
            rb"//127\.0\.0\.1:\d+/", b"//host/", got["mpd-time-csf,encryption=cenc"]
        )
        assert b"//host/clearkey" in got["mpd-time-csf,encryption=cenc"], client
    differ = [path for path in clear if enc[path] != clear[path]]
    assert not differ, differ[:5]


async def _refusal(aiohttp_client: MakeClient, cfg: Path) -> str:
    client = await _client(aiohttp_client, cfg)
    r = await client.get("/bbb.ism/manifest(format=m3u8-aapl)")
    assert r.status == 404
    health = json.loads(await (await client.get("/healthz")).read())
    assert health["refused"] == ["bbb"]
    state = client.app[STATE].current
    return str(state.refused["bbb"])


async def test_a_modified_encrypted_file_is_refused_at_load_with_the_reason(
    ladder: Path, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    data = bytearray((ladder / "enc_240p.mp4").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "enc_240p.mp4").write_bytes(data)
    (tmp_path / "enc_240p.mp4.storage.json").write_bytes(
        record_path(ladder / "enc_240p.mp4").read_bytes()
    )
    cfg = _config(tmp_path, ladder / "state", [tmp_path / "enc_240p.mp4"])
    reason = await _refusal(aiohttp_client, cfg)
    assert "modified since it was encrypted (its SHA-256 differs)" in reason


async def test_a_file_wrapped_for_another_servers_certificate_is_refused(
    ladder: Path, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    other = protection.load_or_create(tmp_path / "other-state")
    assert other.id != protection.load(ladder / "state").id
    cfg = _config(tmp_path, tmp_path / "other-state", [ladder / "enc_240p.mp4"])
    reason = await _refusal(aiohttp_client, cfg)
    assert "wrapped for another protection certificate" in reason


async def test_a_server_with_no_protection_key_refuses_the_file_and_says_how_to_make_one(
    ladder: Path, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    cfg = _config(tmp_path, tmp_path / "empty-state", [ladder / "enc_240p.mp4"])
    reason = await _refusal(aiohttp_client, cfg)
    assert "no protection key" in reason and "origin protection-cert" in reason


async def test_a_damaged_record_refuses_the_asset_and_names_the_field(
    ladder: Path, tmp_path: Path, aiohttp_client: MakeClient
) -> None:
    (tmp_path / "enc.mp4").write_bytes((ladder / "enc_240p.mp4").read_bytes())
    record = json.loads(record_path(ladder / "enc_240p.mp4").read_text())
    record["iv"] = "twelve"
    record_path(tmp_path / "enc.mp4").write_text(json.dumps(record))
    reason = await _refusal(
        aiohttp_client, _config(tmp_path, ladder / "state", [tmp_path / "enc.mp4"])
    )
    assert "enc.mp4.storage.json: iv must be" in reason


def _origin(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "origin", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_origin_encrypt_with_the_printed_certificate_makes_a_file_the_server_opens(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    cert = _origin("protection-cert", home=home)
    assert cert.returncode == 0 and cert.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE" not in cert.stdout
    (tmp_path / "server.pem").write_text(cert.stdout)
    source = SAMPLE_DIR / "sample_240p.mp4"
    out = tmp_path / "up" / "a.mp4"
    out.parent.mkdir()
    run = _origin(
        "encrypt", str(source), str(out), "--cert", str(tmp_path / "server.pem"), home=home
    )
    assert run.returncode == 0, run.stderr
    assert out.stat().st_size == source.stat().st_size
    assert out.read_bytes() != source.read_bytes()
    again = _origin("encrypt", str(source), str(out), home=home)
    assert again.returncode == 1 and "exists (--force replaces it)" in again.stderr
    inspect = _origin("inspect", str(out), home=home)
    assert inspect.returncode == 0, inspect.stderr
    assert "avc1.4d4015" in inspect.stdout
    assert not list(out.parent.glob(".*partial*"))


def test_origin_encrypt_refuses_what_it_cannot_use_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "not.pem").write_text("hello")
    for args, said in (
        (("encrypt", "nope.mp4", str(tmp_path / "o.mp4")), "nope.mp4: No such file"),
        (
            ("encrypt", str(SAMPLE_DIR / "sample_240p.mp4"), str(tmp_path / "o.mp4"), "--cert",
             str(tmp_path / "not.pem")),
            "not a PEM X.509 certificate",
        ),
    ):  # fmt: skip
        run = _origin(*args, home=home)
        assert run.returncode == 1 and said in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
    assert not (tmp_path / "o.mp4").exists()
