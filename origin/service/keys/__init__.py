"""Key material the server keeps: the storage protection key pair, the master key of the
content keys (envelope keys) and the KMS that holds it."""
