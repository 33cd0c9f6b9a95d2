"""The management API's storage encryption at rest: files encrypted on the server under its own
protection certificate, and the records of files encrypted elsewhere, kept in the catalog."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from origin.core.crypto.storage import StorageError, StorageRecord
from origin.service.catalog.errors import Conflict
from origin.service.catalog.guard import (
    Invalid,
    applied,
    body_of,
    catalog_of,
    guarded,
    json_response,
)
from origin.service.keys import commands, protection
from origin.service.served import STATE
from origin.service.storage import record_path


def _abs_path(body: dict[str, Any], name: str) -> Path:
    value = body.get(name)
    if not isinstance(value, str) or not value or not Path(value).is_absolute():
        raise Invalid(name, "must be an absolute path on the server")
    return Path(value)


@guarded
async def encrypt_source(request: web.Request) -> web.StreamResponse:
    """Encrypt a file on the server at rest, under its own protection certificate; the record
    goes into the catalog (and next to the file)."""
    body = await body_of(request)
    unknown = sorted(set(body) - {"input", "output"})
    if unknown:
        raise Invalid(unknown[0], "unknown field")
    source, out = _abs_path(body, "input"), _abs_path(body, "output")
    if not source.is_file():
        raise Invalid("input", "no such file")
    if out.exists() or record_path(out).exists():
        raise Conflict(f"{out} exists")
    state_dir = request.app[STATE].current.config.server.state_dir
    loop = asyncio.get_running_loop()

    def run() -> StorageRecord:
        cert = protection.load_or_create(state_dir).cert
        commands.encrypt_file(source, out, cert)
        return StorageRecord.loads(record_path(out).read_text(encoding="ascii"))

    try:
        record = await loop.run_in_executor(None, run)
    except (OSError, StorageError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise Invalid("output", f"cannot encrypt: {reason}") from None
    catalog, _ = await catalog_of(request)
    await catalog.put_record(str(out), record.dumps())
    await applied(request)
    return json_response(201, {"path": str(out), "record": record.to_json()})


@guarded
async def put_storage_record(request: web.Request) -> web.StreamResponse:
    """Keep the record of a file encrypted elsewhere (``origin encrypt --cert``) in the catalog."""
    body = await body_of(request)
    unknown = sorted(set(body) - {"path", "record"})
    if unknown:
        raise Invalid(unknown[0], "unknown field")
    path = _abs_path(body, "path")
    try:
        record = StorageRecord.from_json(body.get("record"))
    except StorageError as e:
        raise Invalid("record", str(e)) from None
    catalog, _ = await catalog_of(request)
    await catalog.put_record(str(path), record.dumps())
    await applied(request)
    return json_response(201, {"path": str(path), "record": record.to_json()})


@guarded
async def list_storage_records(request: web.Request) -> web.StreamResponse:
    _, snap = await catalog_of(request)
    out = [{"path": p, "record": json.loads(r)} for p, r in sorted(snap.records.items())]
    return json_response(200, {"records": out})
