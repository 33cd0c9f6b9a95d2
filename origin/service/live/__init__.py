"""Live channels in the I/O shell: ingest endpoints, the channel registry and its tasks (looped
assets), ingest authorization, what players fetch, the archive."""
