"""``origin encrypt`` and ``origin protection-cert``: storage encryption at rest from the command
line, as AMS's upload flow (get the protection certificate, encrypt locally, upload); ``origin
master-key``: the master keys of envelope keys."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from origin.core.crypto.storage import FileEncryptor, StorageError
from origin.service.config import Config, ConfigError
from origin.service.keys import protection
from origin.service.keys.kms import MASTER_KEYS_FILE, KmsError, load_local, rotate_file
from origin.service.storage import record_path

CHUNK = 1 << 20


def encrypt_file(source: Path, out: Path, cert: x509.Certificate) -> None:
    """Write ``out`` (``source`` under AES-256-CTR) and its record next to it; both appear only
    when complete. StorageError or OSError on failure, with nothing left behind."""
    if source.resolve() == out.resolve():
        raise StorageError("the output must be another file than the input")
    enc = FileEncryptor(cert)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with source.open("rb") as src, partial.open("wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(enc.update(chunk))
            dst.flush()
            os.fsync(dst.fileno())
        record = enc.finish()
        record_partial = partial.with_name(partial.name + ".json")
        record_partial.write_text(record.dumps(), encoding="ascii")
        partial.rename(out)
        record_partial.rename(record_path(out))
    finally:
        partial.unlink(missing_ok=True)
        partial.with_name(partial.name + ".json").unlink(missing_ok=True)


Load = Callable[[str | None], Config]
Command = Callable[[argparse.Namespace, Load], int]


def _reported(command: Command) -> Command:
    """The command, its failures printed in one line each (exit 1), never a traceback."""

    def run(args: argparse.Namespace, load: Load) -> int:
        try:
            return command(args, load)
        except ConfigError as e:
            print(f"config: {'; '.join(e.problems)}", file=sys.stderr)
        except (StorageError, KmsError) as e:
            print(str(e), file=sys.stderr)
        except OSError as e:
            print(f"{e.filename or 'file'}: {e.strerror or e}", file=sys.stderr)
        return 1

    return run


@_reported
def cmd_encrypt(args: argparse.Namespace, load: Load) -> int:
    source, out = Path(args.input), Path(args.output)
    if (out.exists() or record_path(out).exists()) and not args.force:
        print(f"{out}: exists (--force replaces it)", file=sys.stderr)
        return 1
    if args.cert:
        cert = protection.load_cert(Path(args.cert))
    else:
        cert = protection.load_or_create(load(args.config).server.state_dir).cert
    encrypt_file(source, out, cert)
    print(f"{out}: encrypted at rest (AES-256-CTR); its record: {record_path(out)}")
    return 0


@_reported
def cmd_protection_cert(args: argparse.Namespace, load: Load) -> int:
    key = protection.load_or_create(load(args.config).server.state_dir)
    sys.stdout.write(key.cert_pem().decode("ascii"))
    return 0


@_reported
def cmd_master_key(args: argparse.Namespace, load: Load) -> int:
    """``rotate``: append a new current master key to the master key file; ``list``: the ids."""
    server = load(args.config).server
    if server.master_key_env is not None and args.action == "rotate":
        print(
            f"the master keys come from ${server.master_key_env}: rotate them there "
            "(append `ID HEX`, the new key last)",
            file=sys.stderr,
        )
        return 1
    kms = load_local(server.master_key_file, server.master_key_env, server.state_dir)
    if args.action == "rotate":
        path = server.master_key_file or server.state_dir / MASTER_KEYS_FILE
        new = rotate_file(path)
        print(f"{path}: master key {new!r} added, now current; {kms.current!r} still opens")
        print("restart or reload (SIGHUP) the servers that use it to seal with the new key")
    else:
        for master_id in kms.masters:
            print(master_id + ("  (current)" if master_id == kms.current else ""))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], load: Load) -> None:
    enc = sub.add_parser(
        "encrypt", help="encrypt a source file at rest (AES-256-CTR, key wrapped by RSA-OAEP)"
    )
    enc.add_argument("input")
    enc.add_argument("output", help="the encrypted file; its record is OUTPUT.storage.json")
    enc.add_argument(
        "--cert", help="the server's protection certificate (PEM; default: this machine's)"
    )
    enc.add_argument("--config", help="TOML config whose state_dir keeps the protection key")
    enc.add_argument("--force", action="store_true", help="replace an existing output")
    enc.set_defaults(func=lambda a: cmd_encrypt(a, load))
    cert = sub.add_parser(
        "protection-cert", help="print the protection certificate (made on first use)"
    )
    cert.add_argument("--config", help="TOML config whose state_dir keeps the protection key")
    cert.set_defaults(func=lambda a: cmd_protection_cert(a, load))
    master = sub.add_parser("master-key", help="list or rotate the master keys of envelope keys")
    master.add_argument("action", choices=("list", "rotate"))
    master.add_argument("--config", help="TOML config (default: the built-in sample)")
    master.set_defaults(func=lambda a: cmd_master_key(a, load))
