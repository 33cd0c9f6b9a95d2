"""``access_log_format = "json"``: one object per request, from aiohttp's and the fast path's
answers alike, with the X-Request-Id each answer carries (the client's, or one made for it)."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.server import SAMPLE_KID, run_server, sample_config

MASTER = "/bbb.ism/manifest(format=m3u8-aapl)"


def test_json_lines_carry_request_ids_and_never_a_query(tmp_path: Path) -> None:
    cfg = sample_config(tmp_path, 'access_log_format = "json"')
    with run_server("--config", str(cfg), env={"ORIGIN_LOG_LEVEL": "INFO"}) as server:
        u = urlsplit(server.base)
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
        ids = []
        try:
            for _ in range(3):  # the first through aiohttp, the others from the fast path
                conn.request("GET", MASTER, headers={"User-Agent": "probe/1"})
                r = conn.getresponse()
                r.read()
                ids.append(r.getheader("X-Request-Id"))
            conn.request(
                "GET", f"/key?kid={SAMPLE_KID}&token=secret", headers={"X-Request-Id": "mine-1"}
            )
            r = conn.getresponse()
            r.read()
            ids.append(r.getheader("X-Request-Id"))
        finally:
            conn.close()
        time.sleep(0.3)
        lines = [json.loads(ln) for ln in server.output if ln.startswith("{")]
    assert ids[3] == "mine-1"  # echoed
    assert all(i and len(i) == 16 for i in ids[:3]) and len(set(ids[:3])) == 3  # made, each its own
    masters = [ln for ln in lines if ln["path"] == MASTER]
    assert [ln["request_id"] for ln in masters] == ids[:3]
    assert all(ln["status"] == 200 and ln["user_agent"] == "probe/1" for ln in masters)
    assert {"time", "peer", "method", "bytes", "duration"} <= masters[0].keys()
    key = next(ln for ln in lines if ln["path"] == "/key")
    assert key["request_id"] == "mine-1" and "secret" not in json.dumps(lines)
