import stat
from fractions import Fraction
from ipaddress import ip_network
from pathlib import Path

import pytest

from origin.service.cli import main
from origin.service.config import ConfigError, load_config, parse_config, resolve_secrets
from origin.service.config.channels import secret_path

SECRET = "s3cr3t-ingest-password-0123"
KEY = "00112233445566778899aabbccddeeff"
KID = "da3813af-55e6-48e7-aa9f-a4d6031f7b4d"
ASSET = f"""
[[assets]]
name = "vod"
files = ["a.mp4"]
segment_duration = 6.0
protection = "aes-128"
key_id = "{KID}"
key = "{KEY}"
dash = "clear"
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "a.mp4").write_bytes(b"")
    p = tmp_path / "c.toml"
    p.write_text(ASSET + text)
    return p


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, text))
    return e.value.problems


def _one(tmp_path: Path, text: str, field: str) -> str:
    """The one problem of the config, which must name ``field``."""
    problems = _problems(tmp_path, text)
    assert len(problems) == 1, problems
    assert f": {field}: " in problems[0], problems
    return problems[0]


def test_an_ingest_channel_loads_with_its_defaults_and_relative_archive(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            f"""
[[channels]]
name = "live"
ingest_secret = "{SECRET}"
ingest_allow = ["10.0.0.0/8", "127.0.0.1"]
archive = "arch"
""",
        )
    )
    (ch,) = cfg.channels
    assert ch.name == "live"
    assert ch.window == 120 and ch.segment_duration == 4
    assert ch.ingest_user == "origin" and ch.ingest_secret == SECRET
    assert ch.ingest_allow == (ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32"))
    assert ch.archive == tmp_path / "arch"
    assert ch.protection == "clear" and ch.key is None
    assert not ch.loop and ch.asset is None


def test_channel_protection_options_mean_what_they_mean_for_assets(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            f"""
[[channels]]
name = "live"
ingest_secret = "{SECRET}"
protection = "aes-128"
key_id = "11111111-55e6-48e7-aa9f-a4d6031f7b4d"
key = "{KEY}"
iv = "0xD7D7D7D7D7D7D7D7D7D7D7D7D7D7D7D7"
smooth = "clear"
window = 30
segment_duration = 2.5
""",
        )
    )
    (ch,) = cfg.channels
    assert ch.protection == "aes-128" and ch.key == bytes.fromhex(KEY)
    assert ch.iv == b"\xd7" * 16 and ch.smooth == ("clear",) and ch.dash is None
    assert ch.window == 30 and ch.segment_duration == Fraction(5, 2)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('name = "bad name"', "channels[0].name"),
        ('name = "vod"', "channels[0].name"),  # an asset's name
        ('name = "x"\nprotection = "cenc"', "channels[0].protection"),
        ('name = "x"\nprotection = "aes-128"\nkey_id = "' + KID + '"', "channels[0].key"),
        ('name = "x"\nkey_id = "not-a-uuid"', "channels[0].key_id"),
        ('name = "x"\niv = "0x12"', "channels[0].iv"),
        ('name = "x"\ndash = "cenc"', "channels[0].dash"),
        ('name = "x"\npolicy = "nope"', "channels[0].policy"),
        ('name = "x"\nrequire_token = true', "channels[0].require_token"),
        ('name = "x"\nkey_id = "' + KID + '"\nkey = "' + "ff" * 16 + '"', "channels[0].key"),
        ('name = "x"\nwindow = 0', "channels[0].window"),
        ('name = "x"\nwindow = -5', "channels[0].window"),
        ('name = "x"\nwindow = 11\nsegment_duration = 4', "channels[0].window"),
        ('name = "x"\nsegment_duration = 0.1', "channels[0].segment_duration"),
        ('name = "x"\nsegment_duration = "4"', "channels[0].segment_duration"),
        ('name = "x"\ningest_user = "a:b"', "channels[0].ingest_user"),
        ('name = "x"\ningest_allow = ["10.0.0.0/33"]', "channels[0].ingest_allow[0]"),
        ('name = "x"\ningest_allow = []', "channels[0].ingest_allow"),
        ('name = "x"\ncolour = "red"', "channels[0].colour"),
        ('name = "x"\nasset = "vod"', "channels[0].asset"),  # asset without loop
    ],
)
def test_each_channel_rule_refuses_the_config_naming_the_field(
    tmp_path: Path, body: str, field: str
) -> None:
    extra = "" if "ingest_allow" in body else f'\ningest_secret = "{SECRET}"'
    _one(tmp_path, f"[[channels]]\n{body}{extra}\n", field)


def test_a_channel_with_neither_secret_nor_allow_list_is_refused(tmp_path: Path) -> None:
    problem = _one(tmp_path, '[[channels]]\nname = "live"\n', "channels[0]")
    assert "never open by default" in problem


def test_two_channels_with_one_name_are_refused(tmp_path: Path) -> None:
    table = f'[[channels]]\nname = "live"\ningest_secret = "{SECRET}"\n'
    _one(tmp_path, table + table, "channels[1].name")


def test_a_channel_cannot_reuse_an_assets_key_id_with_another_key(tmp_path: Path) -> None:
    _one(
        tmp_path,
        f"""
[[channels]]
name = "live"
ingest_secret = "{SECRET}"
protection = "aes-128"
key_id = "{KID}"
key = "{"ab" * 16}"
""",
        "channels[0].key",
    )


def test_every_channel_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """
[[channels]]
name = "a"
window = -1
[[channels]]
name = "b b"
ingest_allow = ["nope"]
""",
    )
    fields = {p.split(": ")[1] for p in problems}
    assert {"channels[0].window", "channels[0]", "channels[1].name"} <= fields
    assert "channels[1].ingest_allow[0]" in fields


def test_malformed_secrets_and_keys_are_never_echoed(tmp_path: Path) -> None:
    short, bad_key = "tiny-secret", "zz" + KEY[2:]
    problems = _problems(
        tmp_path,
        f"""
[[channels]]
name = "a"
ingest_secret = "{short}"
[[channels]]
name = "b"
ingest_secret = "has a space in it, long enough"
protection = "aes-128"
key_id = "22222222-55e6-48e7-aa9f-a4d6031f7b4d"
key = "{bad_key}"
""",
    )
    text = "\n".join(problems)
    assert "channels[0].ingest_secret" in text and "channels[1].ingest_secret" in text
    assert "channels[1].key" in text
    for secret in (short, "has a space", bad_key):
        assert secret not in text


def test_the_secret_and_key_are_not_in_the_repr(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            f"""
[[channels]]
name = "live"
ingest_secret = "{SECRET}"
protection = "aes-128"
key_id = "33333333-55e6-48e7-aa9f-a4d6031f7b4d"
key = "{"cd" * 16}"
""",
        )
    )
    assert SECRET not in repr(cfg) and "cd" * 16 not in repr(cfg)
    assert repr(bytes.fromhex("cd" * 16)) not in repr(cfg)


def test_a_looped_channel_plays_an_asset_with_its_protection_and_segments(
    tmp_path: Path,
) -> None:
    cfg = load_config(_write(tmp_path, '[[channels]]\nname = "tv"\nloop = true\nasset = "vod"\n'))
    (ch,) = cfg.channels
    (vod,) = cfg.assets
    assert ch.loop and ch.asset == "vod"
    assert (ch.protection, ch.key_id, ch.key, ch.dash) == (
        vod.protection,
        vod.key_id,
        vod.key,
        vod.dash,
    )
    assert ch.segment_duration == vod.segment_duration == 6
    assert ch.ingest_secret is None and ch.ingest_allow == ()


def test_a_looped_channel_giving_protection_options_has_exactly_its_own(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            '[[channels]]\nname = "tv"\nloop = true\nasset = "vod"\nprotection = "clear"\n',
        )
    )
    (ch,) = cfg.channels
    assert ch.protection == "clear" and ch.key is None and ch.key_id is None and ch.dash is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("loop = true", "channels[0].asset"),
        ('loop = true\nasset = "missing"', "channels[0].asset"),
        (f'loop = true\nasset = "vod"\ningest_secret = "{SECRET}"', "channels[0].ingest_secret"),
        ('loop = true\nasset = "vod"\ningest_allow = ["10.0.0.0/8"]', "channels[0].ingest_allow"),
        ('loop = true\nasset = "vod"\ningest_user = "me"', "channels[0].ingest_user"),
        ('loop = true\nasset = "vod"\narchive = "x"', "channels[0].archive"),
        ('loop = "yes"\nasset = "vod"', "channels[0].loop"),
    ],
)
def test_looped_channel_rules_name_the_field(tmp_path: Path, body: str, field: str) -> None:
    problems = _problems(tmp_path, f'[[channels]]\nname = "tv"\n{body}\n')
    assert any(f": {field}: " in p for p in problems), problems


def test_a_looped_channel_of_an_asset_missing_its_files_stays_as_the_asset_does(
    tmp_path: Path,
) -> None:
    p = _write(tmp_path, '[[channels]]\nname = "tv"\nloop = true\nasset = "vod"\n')
    (tmp_path / "a.mp4").unlink()
    cfg = load_config(p)  # one missing title never takes the origin down
    assert [a.name for a in cfg.assets] == ["vod"] and [c.name for c in cfg.channels] == ["tv"]
    assert any("assets[0].files[0]" in problem for problem in cfg.file_problems)


def test_a_looped_channel_of_a_broken_asset_is_an_error_too(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(
        '[[assets]]\nname = "vod"\nfiles = []\n[[channels]]\nname = "tv"\nloop = true\n'
        'asset = "vod"\n'
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert any("channels[0].asset" in problem for problem in e.value.problems)


def test_state_dir_defaults_to_the_users_state_folder_and_resolves_relative(
    tmp_path: Path,
) -> None:
    assert parse_config({}, base=tmp_path, source="x").server.state_dir == (
        Path.home() / ".local" / "state" / "origin"
    )
    raw = {"server": {"state_dir": "st"}}
    assert parse_config(raw, base=tmp_path, source="x").server.state_dir == tmp_path / "st"


def test_a_generated_secret_is_made_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, '[[channels]]\nname = "live"\ningest_secret = "generate"\n'))
    state = tmp_path / "state"
    assert cfg.channels[0].generate_secret and cfg.channels[0].ingest_secret is None
    assert not state.exists()  # parsing writes nothing
    first = resolve_secrets(cfg, state).channels[0].ingest_secret
    path = secret_path(state, "live")
    assert path == state / "channels" / "live.secret"
    assert first is not None and len(first) == 32
    assert all(ch.isalnum() or ch in "-_" for ch in first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first
    second = resolve_secrets(load_config(tmp_path / "c.toml"), state).channels[0].ingest_secret
    assert second == first  # the file wins over generating again
    other = resolve_secrets(cfg, tmp_path / "elsewhere").channels[0].ingest_secret
    assert other != first
    assert first not in repr(resolve_secrets(cfg, state))


def test_an_unusable_secret_file_is_a_config_error_naming_the_file_only(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, '[[channels]]\nname = "live"\ningest_secret = "generate"\n'))
    path = secret_path(tmp_path, "live")
    path.parent.mkdir()
    path.write_text("short\n")
    with pytest.raises(ConfigError) as e:
        resolve_secrets(cfg, tmp_path)
    assert str(path) in str(e.value) and "short" not in str(e.value).replace(str(path), "")


def test_check_config_reports_channel_problems_and_creates_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path, '[[channels]]\nname = "live"\nwindow = 0\n')
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "channels[0].window" in err and "never open by default" in err
    good = tmp_path / "good.toml"
    good.write_text(
        ASSET + '[server]\nstate_dir = "st"\n[[channels]]\nname = "live"\n'
        'ingest_secret = "generate"\n'
    )
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "1 channel(s)" in out and "generated at first start" in out
    assert not (tmp_path / "st").exists()
