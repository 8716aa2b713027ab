"""Who may call: authentication (tokens, client certificates), TLS, per-token rates,
and the key that signs page tokens.

A group of `config.Settings` (see the package docstring); `CertificatePrincipal` is
one entry of the configuration file's `[principals."<subject>"]` tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from strata_server.core import subjects
from strata_server.core.access_rules import Principal, Role
from strata_server.core.paging import PageTokens


class CertificatePrincipal(BaseModel):
    """What a client certificate's subject may do under mTLS: one entry of the
    `[principals."<subject>"]` tables of the configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["reader", "writer", "admin"] = Field(description="reader, writer or admin")
    namespaces: list[str] = Field(
        min_length=1, description='the namespaces it may name, or ["*"] for every one'
    )
    rate_limit: float = Field(
        0.0, ge=0, description="requests per second, sustained; 0: the server's default"
    )
    burst: int = Field(0, ge=0, description="requests in one burst; 0: the server's default")

    def principal(self, subject: str) -> Principal:
        """The principal of a certificate with this `subject`; its name (the audit
        actor) is the subject as the configuration writes it."""
        return Principal(
            subject,
            Role.parse(self.role),
            frozenset(self.namespaces),
            rate_limit=self.rate_limit,
            burst=self.burst,
        )


class SecuritySettings(BaseModel):
    """The authentication, TLS and rate settings."""

    auth: Literal["none", "token"] = Field(
        "none",
        description="none: every caller may do everything (allowed only on a loopback "
        "listen address, unless allow_insecure); token: every RPC but health needs "
        "`authorization: Bearer <token>` (strata token create)",
    )
    allow_insecure: bool = Field(
        False,
        description="serve with auth none on a non-loopback address anyway (anyone who can "
        "reach the port can read and destroy every namespace)",
    )
    token_recheck_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="token auth: how often each server process checks the tokens table for "
        "a revocation it was not told about through the events channel (a wakeup lost at "
        "the wrong moment), while that channel carries other processes' revocations "
        "(Redis or PostgreSQL); where it cannot (a SQLite file without Redis: every 0.5 s) "
        "or is down (every second), the check runs that often instead, if this is longer. "
        "One small query per process per period, shared by every call",
    )
    token_rate: float = Field(
        0.0,
        ge=0,
        le=1_000_000,
        description="requests per second each token may make, sustained (a token bucket per "
        "token, shared by every replica through Redis), unless the token sets its own; "
        "0: no limit. Over it a call answers RESOURCE_EXHAUSTED with RetryInfo",
    )
    token_burst: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="requests a token may make at once above its sustained rate, unless the "
        "token sets its own; 0: one second's worth of its rate (at least 1)",
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate chain of the server; with tls_key, the gRPC port serves "
        "TLS only (no plaintext). Re-read on SIGHUP",
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_client_ca: Path | None = Field(
        None,
        description="PEM certificates of the authorities that sign client certificates; set, "
        "every client must present one (mTLS). Re-read on SIGHUP",
    )
    principals: dict[str, CertificatePrincipal] = Field(
        default_factory=dict,
        description="under mTLS, the role and namespaces of each client certificate subject, "
        'e.g. [principals."CN=billing,O=acme"] role = "writer" namespaces = ["billing"]',
    )
    page_token_key: SecretStr | None = Field(
        None,
        description="key that signs page tokens, at least 16 characters, the same on every "
        "replica; unset: a random key made once and kept in the database (which every "
        "replica of it shares). A token signed with another key is INVALID_ARGUMENT",
    )

    @field_validator("page_token_key")
    @classmethod
    def _check_page_token_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty STRATA_PAGE_TOKEN_KEY means unset
        if len(value.get_secret_value().encode()) < PageTokens.MIN_KEY_BYTES:
            raise ValueError(f"must be at least {PageTokens.MIN_KEY_BYTES} bytes long")
        return value

    @field_validator("principals")
    @classmethod
    def _check_principals(
        cls, value: dict[str, CertificatePrincipal]
    ) -> dict[str, CertificatePrincipal]:
        seen: dict[subjects.Subject, str] = {}
        for subject in value:
            for key in subjects.keys(subject):
                if seen.setdefault(key, subject) != subject:
                    raise ValueError(f"{subject!r} and {seen[key]!r} name the same subject")
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> SecuritySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key (mTLS is TLS first)")
        if self.principals and self.tls_client_ca is None:
            raise ValueError(
                "principals are client certificate subjects: they need tls_client_ca (mTLS)"
            )
        return self

    @property
    def certificate_principals(self) -> list[Principal]:
        """The principals of the configured certificate subjects."""
        return [spec.principal(subject) for subject, spec in self.principals.items()]
