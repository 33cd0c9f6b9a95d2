"""Live channels, sans-IO: ingest parsing, the fragment index with its sliding window, and the
live manifests and segments built from it."""
