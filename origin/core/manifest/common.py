"""What the manifest builders share: RFC 5646 language tags and run-length segment timelines
(DASH ``<S t d r>``, Smooth ``<c t d>``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# ISO 639-2/T (mdhd) to the shorter ISO 639-1 tag RFC 5646 prefers, for the common languages;
# anything else stays a valid three-letter tag.
_ISO639_1 = {
    "ara": "ar", "chi": "zh", "zho": "zh", "dan": "da", "deu": "de", "ger": "de", "eng": "en",
    "spa": "es", "fin": "fi", "fra": "fr", "fre": "fr", "heb": "he", "hin": "hi", "ita": "it",
    "jpn": "ja", "kor": "ko", "nld": "nl", "dut": "nl", "nor": "no", "pol": "pl", "por": "pt",
    "rus": "ru", "swe": "sv", "tur": "tr", "ukr": "uk",
}  # fmt: skip


def language_tag(iso639_2: str) -> str | None:
    """RFC 5646 tag for an mdhd language, or None for 'und'."""
    if not iso639_2 or iso639_2 == "und":
        return None
    return _ISO639_1.get(iso639_2, iso639_2)


def runs(starts: Sequence[int], durations: Sequence[int]) -> Iterator[tuple[int | None, int, int]]:
    """``(t, d, count)`` per run of contiguous segments of equal duration.

    ``t`` is given for the first run and after a discontinuity (a start that is not the previous
    segment's end), ``None`` where it follows from the previous run.
    """
    t: int | None = None
    d = count = 0
    end = -1
    for start, duration in zip(starts, durations, strict=True):
        if count and start == end and duration == d:
            count += 1
        else:
            if count:
                yield t, d, count
            t = None if start == end else start
            d, count = duration, 1
        end = start + duration
    if count:
        yield t, d, count
