"""Sans-IO media core: bytes and plain data in and out (no asyncio, aiohttp or file I/O)."""
