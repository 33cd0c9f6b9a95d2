from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fuzzing import make_inputs
from tests.support.media import make_mp4


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def bframes_mp4(media_dir: Path) -> Path:
    """H.264 with 2 B-frames (ctts), AAC with priming (edit list), moov first."""
    return make_mp4(media_dir / "bframes.mp4")


@pytest.fixture(scope="session")
def moov_at_end_mp4(media_dir: Path) -> Path:
    return make_mp4(media_dir / "moov_end.mp4", faststart=False)


@pytest.fixture(scope="session")
def fuzz_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The shipped sample cut to 4 s: progressive, fragmented and .ismv (support/fuzzing.py)."""
    return dict(make_inputs(tmp_path_factory.mktemp("fuzz")))
