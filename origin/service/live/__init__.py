"""Live channels in the I/O shell: ingest endpoints, the channel registry, their authorization."""
