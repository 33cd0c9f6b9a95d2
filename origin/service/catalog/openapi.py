"""The management API's OpenAPI 3.1 description (``GET /api/v1/openapi.json``), made from the
same route table the API registers, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
}
ASSET = {
    "type": "object",
    "description": "An [[assets]] table of the config file, as JSON, without key material",
    "required": ["name", "files"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
        "files": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "segment_duration": {"type": "number"},
        "protection": {"enum": ["clear", "aes-128"]},
        "key_id": {"type": "string", "format": "uuid"},
        "iv": {"type": "string"},
        "hls": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "dash": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "smooth": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "policy": {"type": "string"},
        "require_token": {"type": "boolean"},
        "token_segments": {"type": "boolean"},
    },
    "additionalProperties": False,
}
KEY_IN = {
    "type": "object",
    "properties": {
        "key_id": {"type": "string", "format": "uuid"},
        "key": {"type": "string", "description": "16 bytes, hex or base64: imported"},
    },
    "additionalProperties": False,
}
KEY_OUT = {
    "type": "object",
    "properties": {
        "key_id": {"type": "string", "format": "uuid"},
        "master_key": {"type": "string"},
        "created_at": {"type": "number"},
    },
}
POLICY = {
    "type": "object",
    "description": "A [policies.NAME] table of the config file, as JSON",
    "required": ["options"],
}
LOCATOR_IN = {
    "type": "object",
    "required": ["asset"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "asset": {"type": "string"},
        "starts_at": {"type": ["number", "null"], "description": "Unix seconds"},
        "ends_at": {"type": ["number", "null"], "description": "Unix seconds"},
    },
    "additionalProperties": False,
}
ENCRYPT_IN = {
    "type": "object",
    "required": ["input", "output"],
    "properties": {"input": {"type": "string"}, "output": {"type": "string"}},
    "additionalProperties": False,
}
RECORD_IN = {
    "type": "object",
    "required": ["path", "record"],
    "properties": {
        "path": {"type": "string"},
        "record": {
            "type": "object",
            "description": "FILE.storage.json as origin encrypt writes it",
        },
    },
    "additionalProperties": False,
}
CHANNEL = {
    "type": "object",
    "description": "A [[channels]] table of the config file, as JSON, without key material",
}
SCHEMAS = {
    "Error": ERROR, "Asset": ASSET, "KeyRequest": KEY_IN, "Key": KEY_OUT, "Policy": POLICY,
    "LocatorRequest": LOCATOR_IN, "EncryptRequest": ENCRYPT_IN, "StorageRecordRequest": RECORD_IN,
    "Channel": CHANNEL,
}  # fmt: skip
# (method, path, summary, request schema, success status, response schema)
ROUTES: list[tuple[str, str, str, str | None, int, str | None]] = [
    ("get", "/assets", "List catalog assets and their state", None, 200, None),
    ("post", "/assets", "Create an asset (loaded at once)", "Asset", 201, "Asset"),
    ("get", "/assets/{name}", "One asset and its state", None, 200, "Asset"),
    ("put", "/assets/{name}", "Replace an asset", "Asset", 200, "Asset"),
    ("delete", "/assets/{name}", "Delete an asset and its locators", None, 204, None),
    ("get", "/keys", "List content keys (never the keys)", None, 200, None),
    ("post", "/keys", "Make a content key (CSPRNG) or import one", "KeyRequest", 201, "Key"),
    ("post", "/keys/reseal", "Seal every key again with the current master key", None, 200, None),
    ("get", "/keys/{kid}", "One content key (never the key)", None, 200, "Key"),
    ("delete", "/keys/{kid}", "Delete an unused content key", None, 204, None),
    ("get", "/policies", "List authorization policies", None, 200, None),
    ("get", "/policies/{name}", "One policy", None, 200, "Policy"),
    ("put", "/policies/{name}", "Create or replace a policy", "Policy", 201, "Policy"),
    ("delete", "/policies/{name}", "Delete an unused policy", None, 204, None),
    ("get", "/locators", "List locators (?asset=NAME)", None, 200, None),
    ("post", "/locators", "Publish an asset under a locator", "LocatorRequest", 201, None),
    ("get", "/locators/{id}", "One locator with its URLs", None, 200, None),
    ("delete", "/locators/{id}", "Revoke a locator (at once)", None, 204, None),
    ("get", "/channels", "List catalog channels (secrets not shown)", None, 200, None),
    ("get", "/channels/{name}", "One channel", None, 200, None),
    ("put", "/channels/{name}", "Create or replace a live channel", "Channel", 201, None),
    ("delete", "/channels/{name}", "Delete a channel (it stops)", None, 204, None),
    ("post", "/storage/encrypt", "Encrypt a file on the server at rest (AES-256-CTR)",
     "EncryptRequest", 201, None),
    ("get", "/storage/records", "List the storage-encryption records", None, 200, None),
    ("post", "/storage/records", "Keep the record of a file encrypted elsewhere",
     "StorageRecordRequest", 201, None),
]  # fmt: skip
_FAILURES = {
    "400": "Not JSON",
    "401": "No or a wrong admin key",
    "404": "No such entry",
    "409": "Exists, in use, or defined in the config file",
    "422": "A field is wrong (named in `field`)",
    "503": "The catalog database cannot be reached",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def document(prefix: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, status, answer in ROUTES:
        op: dict[str, Any] = {"summary": summary, "responses": {}}
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if body:
            op["requestBody"] = {
                "required": True, "content": {"application/json": {"schema": _ref(body)}},
            }  # fmt: skip
        ok: dict[str, Any] = {"description": "Done"}
        if answer:
            ok["content"] = {"application/json": {"schema": _ref(answer)}}
        op["responses"][str(status)] = ok
        for code, text in _FAILURES.items():
            op["responses"][code] = {
                "description": text, "content": {"application/json": {"schema": _ref("Error")}},
            }  # fmt: skip
        paths.setdefault(prefix + path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "origin management API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"admin": []}],
    }
