"""origin: an asynchronous streaming origin (dynamic packaging, encryption, key delivery)."""

__version__ = "0.1.0"
