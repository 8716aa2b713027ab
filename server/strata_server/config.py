"""The one place Strata reads configuration.

Precedence, highest first: command-line flags, `STRATA_*` environment variables,
the TOML file named by `--config` / `STRATA_CONFIG`, then the defaults of the
setting groups in `strata_server.settings` (one module per concern, each setting
beside its bounds and description). Everything is validated at start, so a bad
value stops the server with one clear message instead of failing on the first
request.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from strata_server.settings.backend_settings import BackendSettings
from strata_server.settings.cache_settings import CacheSettings
from strata_server.settings.limit_settings import LimitSettings
from strata_server.settings.maintenance_settings import MaintenanceSettings
from strata_server.settings.security_settings import SecuritySettings
from strata_server.settings.serving_settings import ServingSettings


class ConfigError(Exception):
    """The configuration is invalid; the message says which setting and why."""


# pydantic runs the groups' whole-model checks last base first, and reports only the
# first that fails: the sizes, then TLS, then the S3 keys.
class Settings(
    ServingSettings,
    CacheSettings,
    MaintenanceSettings,
    BackendSettings,
    SecuritySettings,
    LimitSettings,
    BaseSettings,
):
    """Every setting of a Strata server process: the groups it is made of, read
    from flags, the environment and the TOML file."""

    model_config = SettingsConfigDict(env_prefix="STRATA_", extra="forbid", frozen=True)

    config: Path | None = Field(None, description="TOML file with any of these settings")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file(init_settings, env_settings)
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def _config_file(*sources: PydanticBaseSettingsSource) -> Path | None:
    for source in sources:
        value = source().get("config")
        if value:
            path = Path(value)
            if not path.is_file():
                raise ValueError(f"config file {path} does not exist")
            return path
    return None


LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether a listen host reaches only this machine: 127.0.0.0/8, ::1 or localhost.
    Any other name counts as reachable from elsewhere (it may resolve to anything)."""
    bare = host.strip("[]").lower()
    if bare in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def insecure_listen(settings: Settings) -> str | None:
    """Why these settings must not serve (a non-loopback address without
    authentication, like Redis' protected mode), or None when they may."""
    for listen in (settings.listen, settings.console_listen):
        if listen is None:
            continue
        host = listen.rpartition(":")[0]
        if settings.auth == "none" and not settings.allow_insecure and not is_loopback(host):
            return (
                f"refusing to serve {listen} without authentication: use --auth token "
                "(STRATA_AUTH=token), a loopback address, or --allow-insecure"
            )
    return None


def load_settings(**overrides: Any) -> Settings:
    """Build the Settings from flags (`overrides`, None meaning "not given"), the
    environment and the config file; raises ConfigError with a readable message."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'config'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except ValueError as error:
        raise ConfigError(f"invalid configuration: {error}") from None
