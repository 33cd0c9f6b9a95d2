"""The catalog: assets, content keys (sealed by the master key), authorization policies and
streaming locators in a database (SQLite by default, PostgreSQL for a fleet), managed through a
REST API and merged with the TOML config into what the server serves."""
