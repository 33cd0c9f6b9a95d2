"""The I/O shell: config, storage, caches, key delivery and policies, the aiohttp app, the CLI."""
