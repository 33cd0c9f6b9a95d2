"""The core is sans-IO: it imports without any I/O or service library (DESIGN.md)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import origin.core

FORBIDDEN = ("aiohttp", "asyncio", "uvloop", "aiofiles", "m3u8", "jwt", "origin.service")

_PROBE = """
import importlib, importlib.abc, sys
FORBIDDEN = {forbidden!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
            raise ImportError(f"origin.core imported {{name}}")
        return None

sys.meta_path.insert(0, Block())
for module in {modules!r}:
    importlib.import_module(module)
leaked = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
assert not leaked, leaked
print("ok", len({modules!r}))
"""


def test_every_core_module_imports_without_io_or_service_libraries() -> None:
    modules = sorted(
        m.name for m in pkgutil.walk_packages(origin.core.__path__, prefix="origin.core.")
    )
    assert "origin.core.pipeline" in modules and "origin.core.mux.mpegts" in modules
    probe = _PROBE.format(forbidden=FORBIDDEN, modules=["origin.core", *modules])
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")
