"""Settings: flags over environment over TOML file over defaults, validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata_server.config import ConfigError, Settings, load_settings
from strata_server.core.access_rules import Role
from strata_server.settings.backend_settings import database_target


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


def test_metrics_listen_is_off_by_default_and_a_bare_port_is_loopback() -> None:
    assert load_settings().metrics_listen is None
    assert load_settings(metrics_listen="9464").metrics_listen == "127.0.0.1:9464"
    assert load_settings(metrics_listen=":9464").metrics_listen == "127.0.0.1:9464"
    assert load_settings(metrics_listen="0.0.0.0:9464").metrics_listen == "0.0.0.0:9464"


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        ({"tls_cert": "server.pem"}, "tls_cert and tls_key go together"),
        ({"tls_key": "server.key"}, "tls_cert and tls_key go together"),
        ({"tls_client_ca": "ca.pem"}, "tls_client_ca needs tls_cert"),
    ],
)
def test_tls_settings_that_cannot_work_are_refused(flags: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(**flags)


def test_principals_come_from_the_config_file(tmp_path: Path) -> None:
    file = tmp_path / "strata.toml"
    file.write_text(
        'tls_cert = "s.pem"\ntls_key = "s.key"\ntls_client_ca = "ca.pem"\n'
        '[principals."CN=billing,O=acme"]\nrole = "writer"\nnamespaces = ["billing"]\n'
        '[principals."CN=ops"]\nrole = "admin"\nnamespaces = ["*"]\nrate_limit = 50\n'
    )
    settings = load_settings(config=str(file))
    billing, ops = settings.certificate_principals
    assert (billing.name, billing.role, billing.namespaces) == (
        "CN=billing,O=acme",
        Role.WRITER,
        frozenset({"billing"}),
    )
    assert ops.all_namespaces and ops.may(Role.ADMIN) and ops.rate_limit == 50


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('[principals."CN=a"]\nrole = "root"\nnamespaces = ["a"]\n', "role"),
        ('[principals."CN=a"]\nrole = "reader"\nnamespaces = []\n', "namespaces"),
        ('[principals."billing"]\nrole = "reader"\nnamespaces = ["a"]\n', "not a certificate"),
        (
            '[principals."CN=a,O=b"]\nrole = "reader"\nnamespaces = ["a"]\n'
            '[principals."O = b, CN = a"]\nrole = "admin"\nnamespaces = ["*"]\n',
            "name the same subject",
        ),
    ],
)
def test_bad_principals_are_refused(tmp_path: Path, table: str, problem: str) -> None:
    file = tmp_path / "strata.toml"
    file.write_text('tls_cert = "s.pem"\ntls_key = "s.key"\ntls_client_ca = "ca.pem"\n' + table)
    with pytest.raises(ConfigError, match=problem):
        load_settings(config=str(file))


def test_principals_need_client_certificates(tmp_path: Path) -> None:
    file = tmp_path / "strata.toml"
    file.write_text('[principals."CN=a"]\nrole = "reader"\nnamespaces = ["a"]\n')
    with pytest.raises(ConfigError, match="need tls_client_ca"):
        load_settings(config=str(file))


def test_every_setting_is_in_the_configuration_table() -> None:
    """The operations page's table is what an operator reads: a setting added to
    settings/ without its row there would be a knob nobody can find."""
    page = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    table = page.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in Settings.model_fields if f"`STRATA_{name.upper()}`" not in table]
    assert missing == []
