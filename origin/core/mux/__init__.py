"""Container writers: one module per container (``mpegts``, ``fmp4``)."""

from origin.core.mux.run import Run

__all__ = ["Run"]
