"""ISO BMFF (MP4) parsing: sans-IO top-level walk, ``moov`` → :class:`~origin.core.track.Movie`."""

from origin.core.mp4.parse import Need, drive, parse_bytes, parse_movie

__all__ = ["Need", "drive", "parse_bytes", "parse_movie"]
