"""Settings: flags over environment over TOML file over defaults, validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata_server.config import ConfigError, database_target, load_settings


def test_precedence_flags_then_env_then_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    file = tmp_path / "strata.toml"
    file.write_text('listen = "127.0.0.1:7001"\nlog_level = "debug"\nworkers = 3\n')
    monkeypatch.setenv("STRATA_CONFIG", str(file))
    monkeypatch.setenv("STRATA_LISTEN", "127.0.0.1:7002")
    settings = load_settings()
    assert (settings.listen, settings.log_level, settings.workers) == ("127.0.0.1:7002", "debug", 3)
    assert load_settings(listen="127.0.0.1:7003").listen == "127.0.0.1:7003"


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        ({"listen": "nonsense"}, "listen"),
        ({"database_url": "mysql://x"}, "database_url"),
        ({"database_url": "sqlite://relative.db"}, "database_url"),
        ({"workers": 0}, "workers"),
        ({"log_level": "loud"}, "log_level"),
        ({"config": "/nonexistent/strata.toml"}, "does not exist"),
    ],
)
def test_invalid_settings_name_the_setting(flags: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(**flags)
    assert names in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "strata.toml"
    file.write_text('listne = "127.0.0.1:1"\n')
    with pytest.raises(ConfigError, match="listne"):
        load_settings(config=str(file))


def test_database_urls() -> None:
    assert database_target("sqlite:///data/x.db").path == "data/x.db"
    assert database_target("sqlite:////abs/x.db").path == "/abs/x.db"
    assert database_target("sqlite://:memory:").memory
    assert database_target("postgresql://u@h:5432/db").kind == "postgres"
