"""Content key rotation of live channels: a new key every ``key_rotation`` segments.

Period ``p`` covers segment numbers ``p * every`` to ``(p + 1) * every - 1``. Its key (and key
id) is made with the CSPRNG when the period's first segment is first asked for, sealed by the
master key and appended to ``<state_dir>/channels/<name>.keys`` before it is used, so a restart
serves the same keys for the segments still in the window. A period's key stays deliverable
while any of its segments is in the window (and one period before, for players a little
behind), then it is forgotten.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from origin.core.crypto.envelope import EnvelopeError
from origin.service.config import Config
from origin.service.config.channels import ChannelConfig
from origin.service.keys.kms import Kms
from origin.service.state import ContentKey, content_key

log = logging.getLogger("origin.live")
KEY_BYTES = 16


def keys_path(state_dir: Path, name: str) -> Path:
    return state_dir / "channels" / f"{name}.keys"


@dataclass(slots=True)
class ChannelKeys:
    every: int
    path: Path
    kms: Kms
    policy: str | None
    periods: dict[int, ContentKey] = field(default_factory=dict)
    by_kid: dict[uuid.UUID, ContentKey] = field(default_factory=dict)
    sealed: dict[int, str] = field(default_factory=dict)  # as kept in the file

    @classmethod
    def open(cls, cfg: ChannelConfig, config: Config) -> ChannelKeys:
        kms = config.server.kms
        assert kms is not None and cfg.key_rotation is not None  # resolve_secrets loads it
        keys = cls(cfg.key_rotation, keys_path(config.server.state_dir, cfg.name), kms, cfg.policy)
        keys._read(config)
        return keys

    def _read(self, config: Config) -> None:
        try:
            lines = self.path.read_text(encoding="ascii").splitlines()
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as e:
            log.error("channel keys %s unreadable, new keys are made: %s", self.path, e)
            return
        for line in lines:
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                continue
            try:
                opened = self.kms.open(parts[1])
            except EnvelopeError as e:
                log.error("channel keys %s: a key does not open: %s", self.path, e)
                continue
            key = content_key(config, opened.kid, opened.key, self.policy)
            self._add(int(parts[0]), key, parts[1])

    def _add(self, period: int, key: ContentKey, sealed: str) -> None:
        self.periods[period] = key
        self.by_kid[key.kid] = key
        self.sealed[period] = sealed

    def period(self, number: int) -> int:
        return number // self.every

    def key_for(self, number: int, config: Config) -> ContentKey:
        """The key of segment ``number``'s period, made (and kept sealed) when first needed."""
        period = self.period(number)
        key = self.periods.get(period)
        if key is None:
            kid, raw = uuid.uuid4(), os.urandom(KEY_BYTES)
            sealed = self.kms.seal(kid, raw, self.policy)
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as f:
                f.write(f"{period} {sealed}\n")
                f.flush()
                os.fsync(f.fileno())
            key = content_key(config, kid, raw, self.policy)
            self._add(period, key, sealed)
        return key

    def forget_before(self, first_number: int) -> None:
        """Drop the keys of periods wholly before the window (one period of slack)."""
        keep_from = self.period(first_number) - 1
        gone = [p for p in self.periods if p < keep_from]
        if not gone:
            return
        for period in gone:
            del self.by_kid[self.periods.pop(period).kid]
            del self.sealed[period]
        # The file keeps what is still deliverable only (rewritten aside, then renamed over).
        aside = self.path.with_name(self.path.name + ".new")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.writelines(f"{p} {text}\n" for p, text in sorted(self.sealed.items()))
        aside.replace(self.path)
