"""Container writers: one module per container (``mpegts``, ``fmp4``, and ``smooth``
for Smooth Streaming fragments, built on fmp4's boxes)."""

from origin.core.mux.run import Run

__all__ = ["Run"]
