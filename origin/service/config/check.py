"""The one way config tables are validated: every problem collected, each located by field.

A problem reads ``<source>: <where>: <what>`` (``config.toml: assets[1].key: ...``), or
``<where>: <what>`` for a checker with no source (a section parsed on its own). Values are never
echoed by these helpers, so a malformed secret stays out of the message.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any


class ConfigError(Exception):
    """One or more problems in a config file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Checker:
    def __init__(self, source: str | None = None) -> None:
        self.source = source
        self.problems: list[str] = []
        self.asset_only: set[int] = set()  # indices into problems that refuse one asset only

    def bad(self, where: str, what: str, *, asset_only: bool = False) -> None:
        if asset_only:
            self.asset_only.add(len(self.problems))
        prefix = f"{self.source}: " if self.source else ""
        self.problems.append(f"{prefix}{where}: {what}")

    def extend(self, problems: Iterable[str]) -> None:
        """Problems of a section parsed by its own checker (no source), located in this one."""
        prefix = f"{self.source}: " if self.source else ""
        self.problems += [f"{prefix}{problem}" for problem in problems]

    def fatal_count(self) -> int:
        return len(self.problems) - len(self.asset_only)

    def table(self, value: object, where: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.bad(where, "must be a table")
            return None
        return value

    def unknown(self, table: dict[str, Any], known: Collection[str], where: str) -> None:
        for name in table:
            if name not in known:
                self.bad(f"{where}.{name}", "unknown field")

    def typed(self, table: dict[str, Any], name: str, where: str, kind: type, default: Any) -> Any:
        """``table[name]`` if it is a ``kind`` (an int counts as a float, a bool as neither),
        else ``default``, reported unless the field is absent."""
        if name not in table:
            return default
        value = table[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            self.bad(f"{where}.{name}", f"must be {kind.__name__}, got {type(value).__name__}")
            return default
        return value
