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
