"""The catalog's errors (no database code: the command line and the API import them)."""


class CatalogError(Exception):
    """A catalog operation that did not happen, with the reason (no secret in it)."""


class Unavailable(CatalogError):
    """The database cannot be reached or used (HTTP 503)."""


class Conflict(CatalogError):
    """A name or id that exists, or an entry still in use (HTTP 409)."""


class Missing(CatalogError):
    """No such entry (HTTP 404)."""
