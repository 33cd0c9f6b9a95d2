"""Errors raised by the sans-IO core. The service maps them to HTTP statuses."""


class MediaError(ValueError):
    """A source file is broken, truncated or uses something we do not support."""


class NotFoundError(LookupError):
    """A rendition, segment or other addressed thing does not exist."""
