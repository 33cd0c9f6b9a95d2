"""``origin asset|key|policy|channel|locator …``: the management API from the command line.

Each command is one API request to a running server (``--url``, default the config's address)
with the admin key from the config (its ``admin_key_env`` variable, or the key file the server
made in its state folder). It prints the answer's JSON, or the API's error and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from origin.core import urls
from origin.service.config import Config, ConfigError
from origin.service.config.channels import ADMIN_KEY_FILE

Load = Callable[[str | None], Config]
Api = Callable[[argparse.Namespace, Load], Any]
if TYPE_CHECKING:
    Group = argparse._SubParsersAction[argparse.ArgumentParser]


class CommandError(Exception):
    pass


def _target(args: argparse.Namespace, load: Load) -> tuple[str, str]:
    config = load(args.config)
    catalog = config.catalog
    if catalog is None:
        raise CommandError("the config has no [catalog]: the management API is off")
    if catalog.admin_key_env is not None:
        key = os.environ.get(catalog.admin_key_env)
        if not key:
            raise CommandError(f"the admin key variable {catalog.admin_key_env} is not set")
    else:
        where = catalog.admin_key_file or config.server.state_dir / ADMIN_KEY_FILE
        try:
            key = where.read_text(encoding="ascii").strip()
        except OSError as e:
            raise CommandError(f"{where}: cannot read the admin key: {e.strerror}") from None
    root = args.url or urls.root_url(config.server.host, config.server.port)
    return root.rstrip("/"), key


def request(args: argparse.Namespace, load: Load, method: str, path: str, body: Any = None) -> Any:
    root, key = _target(args, load)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{root}/api/v1{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as e:
        try:
            answer = json.loads(e.read())
        except ValueError:
            answer = {"error": e.reason}
        field = f" ({answer['field']})" if "field" in answer else ""
        raise CommandError(f"{e.code}: {answer.get('error')}{field}") from None
    except OSError as e:
        raise CommandError(f"cannot reach {root}: {e}") from None
    return json.loads(text) if text else None


def _asset_add(args: argparse.Namespace, load: Load) -> Any:
    spec: dict[str, Any] = {
        "name": args.name,
        "files": [str(Path(f).resolve()) for f in args.files],
        "segment_duration": args.segment_duration,
    }
    if args.key_id:
        spec.update(protection="aes-128", key_id=args.key_id)
    for name in ("policy", "hls", "dash", "smooth"):
        value = getattr(args, name)
        if value:
            spec[name] = value.split(",") if name != "policy" else value
    return request(args, load, "POST", "/assets", spec)


def _key_create(args: argparse.Namespace, load: Load) -> Any:
    body: dict[str, str] = {}
    if args.key_id:
        body["key_id"] = args.key_id
    if args.import_key:
        body["key"] = args.import_key
    return request(args, load, "POST", "/keys", body)


def _table(path: Path) -> Any:
    """A table from a TOML or JSON file, as the API takes it."""
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as e:
        raise CommandError(f"{path}: {e}") from None


def _policy_put(args: argparse.Namespace, load: Load) -> Any:
    return request(args, load, "PUT", f"/policies/{args.name}", _table(Path(args.file)))


def _channel_put(args: argparse.Namespace, load: Load) -> Any:
    return request(args, load, "PUT", f"/channels/{args.name}", _table(Path(args.file)))


def _locator_create(args: argparse.Namespace, load: Load) -> Any:
    body: dict[str, Any] = {"asset": args.asset}
    now = time.time()
    if args.starts_in is not None:
        body["starts_at"] = now + args.starts_in
    if args.ends_in is not None:
        body["ends_at"] = now + args.ends_in
    return request(args, load, "POST", "/locators", body)


def _simple(method: str, path: str) -> Api:
    return lambda args, load: request(args, load, method, path.format(**vars(args)))


def run(args: argparse.Namespace, load: Load) -> int:
    try:
        answer = args.api(args, load)
    except (CommandError, ConfigError) as e:
        print(str(e) if isinstance(e, CommandError) else "; ".join(e.problems), file=sys.stderr)
        return 1
    if answer is not None:
        print(json.dumps(answer, indent=2))
    return 0


def add_parsers(sub: Group, load: Load) -> None:
    def command(group: Group, name: str, helptext: str, api: Api) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=helptext)
        p.add_argument("--config", help="the server's TOML config (its [catalog] and address)")
        p.add_argument("--url", help="the server's root URL (default: from the config)")
        p.set_defaults(func=lambda a: run(a, load), api=api)
        return p

    asset = sub.add_parser("asset", help="catalog assets (management API)").add_subparsers(
        dest="action", required=True
    )
    add = command(asset, "add", "add an asset from files", _asset_add)
    add.add_argument("name")
    add.add_argument("files", nargs="+")
    add.add_argument("--segment-duration", type=float, default=6.0)
    add.add_argument("--key-id", help="protect with this content key (AES-128 on HLS)")
    add.add_argument("--policy", help="the key's authorization policy")
    for proto in ("hls", "dash", "smooth"):
        add.add_argument(f"--{proto}", help=f"delivery schemes for {proto}, comma-separated")
    command(asset, "list", "list catalog assets", _simple("GET", "/assets"))
    show = command(asset, "show", "one asset and its state", _simple("GET", "/assets/{name}"))
    show.add_argument("name")
    rm = command(
        asset, "rm", "delete an asset and its locators", _simple("DELETE", "/assets/{name}")
    )
    rm.add_argument("name")

    key = sub.add_parser("key", help="content keys (management API)").add_subparsers(
        dest="action", required=True
    )
    create = command(key, "create", "make a content key (or import one)", _key_create)
    create.add_argument("--key-id")
    create.add_argument("--import", dest="import_key", help="16 bytes, hex or base64")
    command(key, "list", "list content keys (ids only)", _simple("GET", "/keys"))
    command(
        key, "rotate", "seal every content key again with the current master key",
        _simple("POST", "/keys/reseal"),
    )  # fmt: skip
    krm = command(key, "rm", "delete an unused content key", _simple("DELETE", "/keys/{kid}"))
    krm.add_argument("kid")

    policy = sub.add_parser(
        "policy", help="authorization policies (management API)"
    ).add_subparsers(dest="action", required=True)
    put = command(policy, "put", "create or replace a policy from a TOML/JSON file", _policy_put)
    put.add_argument("name")
    put.add_argument("file", help="the [policies.NAME] table as TOML (options = […]) or JSON")
    command(policy, "list", "list catalog policies", _simple("GET", "/policies"))
    prm = command(policy, "rm", "delete an unused policy", _simple("DELETE", "/policies/{name}"))
    prm.add_argument("name")

    channel = sub.add_parser("channel", help="live channels (management API)").add_subparsers(
        dest="action", required=True
    )
    cput = command(
        channel, "put", "create or replace a channel from a TOML/JSON file", _channel_put
    )
    cput.add_argument("name")
    cput.add_argument("file", help="the [[channels]] table's fields as TOML or JSON")
    command(channel, "list", "list catalog channels", _simple("GET", "/channels"))
    crm = command(
        channel, "rm", "delete a channel (it stops)", _simple("DELETE", "/channels/{name}")
    )
    crm.add_argument("name")

    locator = sub.add_parser("locator", help="streaming locators (management API)").add_subparsers(
        dest="action", required=True
    )
    lc = command(locator, "create", "publish an asset under a new locator", _locator_create)
    lc.add_argument("asset")
    lc.add_argument("--starts-in", type=float, help="seconds from now (default: now)")
    lc.add_argument("--ends-in", type=float, help="seconds from now (default: until deleted)")
    command(locator, "list", "list locators", _simple("GET", "/locators"))
    lrm = command(locator, "rm", "revoke a locator", _simple("DELETE", "/locators/{id}"))
    lrm.add_argument("id")
