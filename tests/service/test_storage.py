"""Reading a segment's byte ranges: from the page cache on the loop, else in a thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from origin.core.plan import Span
from origin.service import storage
from origin.service.storage import SourceUnavailable, open_source, read_resident, read_spans

DATA = bytes(range(256)) * 1024  # 256 KiB, every offset tells its byte apart
SPANS = [Span(0, 0, 1000), Span(0, 70_000, 120_000), Span(0, len(DATA) - 10, 10)]
EXPECTED = [DATA[s.offset : s.offset + s.size] for s in SPANS]
NOWAIT = pytest.mark.skipif(storage._NOWAIT is None, reason="no RWF_NOWAIT on this platform")


def _source(tmp_path: Path) -> storage.SourceFile:
    path = tmp_path / "a.mp4"
    path.write_bytes(DATA)  # just written: its pages are in the page cache
    return open_source(path)


@NOWAIT
async def test_spans_in_the_page_cache_are_read_on_the_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path)
    threads = set()
    preadv = os.preadv

    def spy(*args: object) -> int:
        threads.add(threading.get_ident())
        return preadv(*args)  # type: ignore[arg-type]

    def thread_read(*args: object) -> bytes:
        raise AssertionError("read by the thread path")

    monkeypatch.setattr(os, "preadv", spy)
    monkeypatch.setattr(os, "pread", thread_read)
    try:
        assert await read_spans([src], SPANS) == EXPECTED
    finally:
        storage.close_all([src])
    assert threads == {threading.get_ident()}


async def test_spans_the_page_cache_cannot_serve_now_are_read_by_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path)

    def not_resident(*args: object) -> int:
        raise BlockingIOError(11, "would block")

    monkeypatch.setattr(os, "preadv", not_resident)
    try:
        assert read_resident([src], SPANS) is None
        assert await read_spans([src], SPANS) == EXPECTED
    finally:
        storage.close_all([src])


@NOWAIT
async def test_a_short_resident_read_goes_to_the_thread_which_refuses_it(tmp_path: Path) -> None:
    src = _source(tmp_path)
    past_end = [Span(0, len(DATA) - 100, 200)]  # the index promises more than the file has
    try:
        assert read_resident([src], past_end) is None
        with pytest.raises(SourceUnavailable, match="shorter than its index"):
            await read_spans([src], past_end)
    finally:
        storage.close_all([src])


async def test_a_file_changed_since_loading_is_refused_even_when_resident(tmp_path: Path) -> None:
    src = _source(tmp_path)
    st = os.stat(src.path)
    os.utime(src.path, (st.st_atime, st.st_mtime + 5))
    try:
        assert read_resident([src], SPANS) is None
        with pytest.raises(SourceUnavailable, match="changed on disk"):
            await read_spans([src], SPANS)
    finally:
        storage.close_all([src])
