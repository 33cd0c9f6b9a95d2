"""The media and configs of scripts/bench.py: the built-in sample (10 s), a 3-rendition 60 s ladder
with 4 s segments (the issue's ladder: 45 segments) and a 720p 4 Mbit/s asset with 6 s segments,
the latter two made with ffmpeg once and cached in /tmp."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import bench_live
import jwt
from bench_http import CACHE, ROOT

KID = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"
KEY = "3c9f2bd4a1e0475e8a7f6b2c1d0e9f8a"
JWT_KID = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
JWT_SECRET = bytes(range(64))
SAMPLE = [ROOT / "origin" / "sample" / f"sample_{n}.mp4" for n in ("240p", "360p", "480p")]


def jwt_token() -> str:
    now = int(time.time())
    claims = {
        "iss": "https://sts.example",
        "aud": "urn:origin",
        "nbf": now - 60,
        "exp": now + 3600,
        "urn:microsoft:azure:mediaservices:contentkeyidentifier": JWT_KID,
    }
    token: str = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    return token


def _encode(out: Path, width: int, height: int, rate: str, audio: str) -> Path:
    """60 s of H.264 (2 s GOPs) + AAC, once."""
    if not out.exists():
        print(f"making a 60 s {height}p {rate}bit/s bench asset with ffmpeg…", flush=True)
        tmp = out.with_suffix(".tmp.mp4")
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-v", "error", "-y",
                "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration=60",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=60",
                "-c:v", "libx264", "-preset", "ultrafast", "-b:v", rate, "-maxrate", rate,
                "-bufsize", "8M", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
                "-c:a", "aac", "-b:a", audio, "-movflags", "+faststart", str(tmp),
            ],
            check=True,
        )  # fmt: skip
        tmp.rename(out)
    return out


def make_big() -> Path:
    CACHE.mkdir(exist_ok=True)
    return _encode(CACHE / "bench_720p.mp4", 1280, 720, "4M", "128k")


def make_ladder() -> list[Path]:
    """The renditions of bench_live's ladder, as VOD mp4 files."""
    CACHE.mkdir(exist_ok=True)
    return [
        _encode(CACHE / f"bench_ladder_{name}.mp4", w, h, rate, "64k")
        for name, w, h, rate in bench_live.LADDER
    ]


def asset(name: str, files: list[Path], segment_duration: float = 4.0) -> str:
    """An AES-128 asset, DASH and Smooth in the clear by default, every scheme allowed, with
    the bench's key."""
    return f"""
[[assets]]
name = "{name}"
files = [{", ".join(f'"{f}"' for f in files)}]
segment_duration = {segment_duration}
protection = "aes-128"
key_id = "{KID}"
key = "{KEY}"
hls = ["cbc", "cbcs", "cenc"]
dash = ["clear", "cenc", "cbcs"]
smooth = ["clear", "cenc"]
"""


SERVER = "[server]\naccess_log = false\n"  # the defaults but the access log


def encrypt_at_rest(ladder: list[Path]) -> tuple[list[Path], Path]:
    """The ladder encrypted at rest (``origin encrypt``) under a state folder's protection key,
    made once; the files and the state folder that opens them."""
    from origin.service.keys import commands, protection  # noqa: PLC0415
    from origin.service.storage import record_path  # noqa: PLC0415

    state = CACHE / "atrest_state"
    cert = protection.load_or_create(state).cert
    out = []
    for clear in ladder:
        enc = CACHE / f"atrest_{clear.name}"
        if not record_path(enc).exists() or enc.stat().st_mtime < clear.stat().st_mtime:
            commands.encrypt_file(clear, enc, cert)
        out.append(enc)
    return out, state


def write_catalog(name: str, ladder: list[Path], n: int) -> Path:
    """A config whose ``n`` assets a0, a1, … (the ladder's renditions, clear) live in a SQLite
    catalog, indexed lazily; written in one transaction (the API would take one per asset)."""
    import asyncio  # noqa: PLC0415
    import json  # noqa: PLC0415
    import time  # noqa: PLC0415

    import sqlalchemy as sa  # noqa: PLC0415

    from origin.service.catalog import schema  # noqa: PLC0415
    from origin.service.catalog.store import Catalog  # noqa: PLC0415

    db = CACHE / f"{name}.db"
    for old in CACHE.glob(f"{name}.db*"):
        old.unlink()
    spec = json.dumps({"files": [str(f) for f in ladder], "segment_duration": 4.0})

    async def fill() -> None:
        catalog = await Catalog.open(f"sqlite:///{db}")
        now = time.time()
        rows = [
            {"name": f"a{i}", "spec": spec, "created_at": now, "updated_at": now} for i in range(n)
        ]
        async with catalog.engine.begin() as conn:
            if rows:
                await conn.execute(sa.insert(schema.assets), rows)
            await conn.execute(sa.insert(schema.changes).values(at=now, what="bench"))
        await catalog.close()

    asyncio.run(fill())
    cfg = CACHE / f"{name}.toml"
    cfg.write_text(
        SERVER + f'index = "lazy"\nstate_dir = "{CACHE / "catalog_state"}"\n'
        f'[catalog]\ndatabase_url = "sqlite:///{db}"\n'
    )
    return cfg


def add_locator(cfg: Path, asset: str) -> str:
    """A locator for ``asset`` written into ``cfg``'s catalog; the URL prefix ``/{id}``."""
    import asyncio  # noqa: PLC0415
    import time  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    from origin.service.catalog.store import Catalog  # noqa: PLC0415
    from origin.service.catalog.view import Locator  # noqa: PLC0415

    url = cfg.read_text().split('database_url = "', 1)[1].split('"', 1)[0]
    loc = Locator(str(uuid.uuid4()), asset, None, None, time.time())

    async def add() -> None:
        catalog = await Catalog.open(url)
        await catalog.add_locator(loc)
        await catalog.close()

    asyncio.run(add())
    return f"/{loc.id}"


def write_config(ladder: list[Path], big: Path) -> Path:
    """sample, ladder and big; tokened (the sample under a JWT policy); bench_live's channels."""
    cfg = CACHE / "bench.toml"
    master = CACHE / "bench_master.keys"
    if not master.exists():
        from origin.service.keys.kms import key_line  # noqa: PLC0415

        master.write_text(key_line("m1"))
    cfg.write_text(
        SERVER
        # Key URIs carry envelopes (the "keys (envelope …)" rows); the kid-only URIs still work.
        + f'envelope_keys = true\nmaster_key_file = "{master}"\n'
        + asset("sample", SAMPLE)
        + asset("ladder", ladder)
        + asset("big", [big], 6.0)
        + f"""
[[assets]]
name = "tokened"
files = [{", ".join(f'"{f}"' for f in SAMPLE)}]
segment_duration = 4.0
protection = "aes-128"
key_id = "{JWT_KID}"
key = "{KEY}"
policy = "jwt"

[[policies.jwt.options]]
type = "token"
token_type = "jwt"
issuer = "https://sts.example"
audience = "urn:origin"
primary_key = "{base64.b64encode(JWT_SECRET).decode()}"
required_claims = [{{ type = "urn:microsoft:azure:mediaservices:contentkeyidentifier" }}]
"""
        + bench_live.config("sample")
    )  # fmt: skip
    return cfg


def write_many(name: str, ladder: list[Path], n: int, server: str = "") -> Path:
    """``n`` assets a0, a1, … each the ladder's 3 renditions; ``server``: more [server] lines."""
    cfg = CACHE / f"{name}.toml"
    cfg.write_text(SERVER + server + "".join(asset(f"a{i}", ladder) for i in range(n)))
    return cfg
