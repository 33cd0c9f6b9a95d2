from pathlib import Path

import pytest

from origin.service.config import ConfigError, load_config

SECRET = "00112233445566778899aabbccddeeff"


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "a.mp4").write_bytes(b"")
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_the_issue_example_schema_loads_with_relative_paths(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        f"""
[server]
host = "127.0.0.1"
port = 8080
[[assets]]
name = "bbb"
files = ["a.mp4"]
segment_duration = 6.0
protection = "aes-128"
key_id = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"
key = "{SECRET}"
iv = "0xD7D7D7D7D7D7D7D7D7D7D7D7D7D7D7D7"
""",
    )
    cfg = load_config(p)
    a = cfg.assets[0]
    assert a.files == (tmp_path / "a.mp4",)
    assert a.key == bytes.fromhex(SECRET)
    assert a.iv == b"\xd7" * 16
    assert SECRET not in repr(cfg)


def test_base64_key_and_key_file_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "k.bin").write_bytes(bytes(range(16)))
    p = _write(
        tmp_path,
        """
[[assets]]
name = "a"
files = ["a.mp4"]
protection = "aes-128"
key_id = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"
key_file = "k.bin"
[[assets]]
name = "b"
files = ["a.mp4"]
protection = "aes-128"
key_id = "11111111-55e6-48e7-aa9f-a4d6031f7b4d"
key = "AAECAwQFBgcICQoLDA0ODw=="
""",
    )
    cfg = load_config(p)
    assert cfg.assets[0].key == cfg.assets[1].key == bytes(range(16))


def test_a_base64_key_with_a_stray_character_is_refused_not_read_as_another_key(
    tmp_path: Path,
) -> None:
    # Content keys and token keys share one base64 reading: unpadded, URL-safe and spaced
    # spellings are fine, a character outside the alphabet is not silently skipped.
    assets = "".join(
        f'[[assets]]\nname = "a{i}"\nfiles = ["a.mp4"]\nprotection = "aes-128"\n'
        f'key_id = "{i:08x}-55e6-48e7-aa9f-a4d6031f7b4d"\nkey = "{key}"\n'
        for i, key in enumerate(["AAECAwQFBgcICQoLDA0ODw", "AAEC AwQFBgcICQoLDA0ODw==", "AA-CAw=="])
    )
    cfg = load_config(_write(tmp_path, assets.replace("AA-CAw==", "AAECAwQFBgcICQoLDA0ODw==")))
    assert [a.key for a in cfg.assets] == [bytes(range(16))] * 3
    p = _write(tmp_path, assets.replace("AA-CAw==", "AAECAwQF!BgcICQoLDA0ODw=="))
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.problems == [
        f"{p}: assets[2].key: must be 16 bytes as 32 hex digits or base64 (value not shown)"
    ]


def test_every_error_is_reported_with_file_and_field_and_no_key(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        f"""
[server]
port = "eighty"
colour = 1
[[assets]]
name = "bad name"
files = ["missing.mp4"]
segment_duration = 0.1
protection = "aes-256"
key_id = "nope"
key = "{SECRET[:-2]}"
iv = "D7"
""",
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    for field in (
        "server.port", "server.colour", "assets[0].name", "assets[0].files[0]",
        "assets[0].segment_duration", "assets[0].protection", "assets[0].key_id",
        "assets[0].key", "assets[0].iv",
    ):  # fmt: skip
        assert f"{p}: {field}:" in text, field
    assert SECRET[:-2] not in text


def test_protected_asset_needs_key_and_key_id(tmp_path: Path) -> None:
    p = _write(tmp_path, '[[assets]]\nname = "a"\nfiles = ["a.mp4"]\nprotection = "aes-128"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "assets[0].key:" in str(e.value) and "assets[0].key_id:" in str(e.value)


def test_one_key_id_with_two_keys_is_refused(tmp_path: Path) -> None:
    kid = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"
    p = _write(
        tmp_path,
        f'[[assets]]\nname = "a"\nfiles = ["a.mp4"]\nkey_id = "{kid}"\nkey = "{SECRET}"\n'
        f'[[assets]]\nname = "b"\nfiles = ["a.mp4"]\nkey_id = "{kid}"\nkey = "{"11" * 16}"\n',
    )
    with pytest.raises(ConfigError, match="different key"):
        load_config(p)


def test_invalid_toml_is_one_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)


def test_every_error_is_reported_in_one_pass_including_references_across_sections(
    tmp_path: Path,
) -> None:
    p = _write(
        tmp_path,
        """
[[assets]]
name = "a"
files = ["a.mp4"]
segment_duration = 0.1
policy = "nope"
[[assets]]
name = "a"
files = ["a.mp4"]
protection = "aes-256"
require_token = true
""",
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    for field in (
        "assets[0].segment_duration", "assets[0].policy", "assets[1].protection",
        "assets[1].require_token", "assets[1].name",
    ):  # fmt: skip
        assert f"{p}: {field}:" in text, (field, text)
    assert "no policy named 'nope'" in text and "duplicate asset name 'a'" in text


def test_an_empty_files_list_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path, '[[assets]]\nname = "a"\nfiles = []\n')
    with pytest.raises(ConfigError, match=r"assets\[0\]\.files: must list at least one file"):
        load_config(p)


def test_a_missing_file_or_a_directory_refuses_its_asset_only(tmp_path: Path) -> None:
    (tmp_path / "dir.mp4").mkdir()
    p = _write(
        tmp_path,
        '[[assets]]\nname = "a"\nfiles = ["a.mp4", "gone.mp4"]\n'
        '[[assets]]\nname = "b"\nfiles = ["dir.mp4"]\n'
        '[[assets]]\nname = "c"\nfiles = ["a.mp4"]\n',
    )
    cfg = load_config(p)  # the config stands; serving refuses a and b, check-config reports them
    assert [a.name for a in cfg.assets] == ["a", "b", "c"]
    assert cfg.file_problems == (
        f"{p}: assets[0].files[1]: no such file: {tmp_path / 'gone.mp4'}",
        f"{p}: assets[1].files[0]: is a directory, not a file: {tmp_path / 'dir.mp4'}",
    )


@pytest.mark.parametrize(
    "text",
    [
        '[[assets]]\nname = "a"\nfiles = ["a.mp4"]\nkey_id = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"'
        '\nkey_file = "k\\u0000.bin"\n',
        '[[policies.p.options]]\ntype = "token"\nissuer = "i"\naudience = "a"\n'
        'primary_key_file = "k\\u0000.pem"\n',
        "x = " + "[" * 3000 + "]" * 3000 + "\n",
    ],
    ids=["nul-in-key-file", "nul-in-primary-key-file", "nested-too-deeply"],
)
def test_inputs_that_crashed_the_parser_are_config_errors(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(_write(tmp_path, text))


def test_connection_limits_have_defaults_and_are_read(tmp_path: Path) -> None:
    default = load_config(_write(tmp_path, "")).server
    assert (default.max_url_bytes, default.header_timeout) == (4096, 10.0)
    assert (default.keepalive_timeout, default.drain_timeout) == (30.0, 15.0)
    p = _write(
        tmp_path,
        "[server]\nmax_url_bytes = 9000\nheader_timeout = 2.5\n"
        "keepalive_timeout = 5\ndrain_timeout = 0\n",
    )
    s = load_config(p).server
    assert (s.max_url_bytes, s.header_timeout, s.keepalive_timeout, s.drain_timeout) == (
        9000, 2.5, 5.0, 0.0,
    )  # fmt: skip


def test_bad_connection_limits_are_each_reported(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "[server]\nmax_url_bytes = 10\nheader_timeout = 0\nkeepalive_timeout = -1\n"
        'drain_timeout = "soon"\n',
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    assert "server.max_url_bytes: must be >= 256, got 10" in text
    assert "server.header_timeout: must be > 0 and <= 3600 seconds, got 0.0" in text
    assert "server.keepalive_timeout: must be > 0 and <= 3600 seconds, got -1.0" in text
    assert "server.drain_timeout: must be float, got str" in text
    assert len(e.value.problems) == 4
