"""Errors raised by the sans-IO core. The service maps them to HTTP statuses."""


class MediaError(ValueError):
    """A source file is broken, truncated or uses something we do not support."""


class NotFoundError(LookupError):
    """A rendition, segment or other addressed thing does not exist."""


def describe(e: BaseException) -> str:
    """``Type: message`` of an unexpected exception, for a refusal's reason."""
    kind = type(e)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    return f"{name}: {e}"


class IngestError(MediaError):
    """Live ingest that cannot be accepted: malformed boxes, timestamps going backwards, a
    fragment too large. The service answers the encoder's connection with ``status`` and keeps
    what was already indexed. The message names what is wrong, never key material."""

    status = 400


class IngestConflict(IngestError):
    """A stream contradicts what the channel already serves (a track's codec changed)."""

    status = 409


class IngestTooLarge(IngestError):
    """A box or fragment beyond the configured limit."""

    status = 413


class NotYetAvailable(NotFoundError):
    """A live segment (or manifest) addressed before it exists: 404 with ``max-age`` 1, so a CDN
    asks again soon rather than caching the miss."""

    status = 404
    max_age = 1


class SlidOut(NotFoundError):
    """A live segment that has left the channel's window: it will never come back (410)."""

    status = 410
