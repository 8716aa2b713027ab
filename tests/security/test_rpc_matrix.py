"""Every RPC of every service, generated from the service descriptors, against a
`--auth token` server on both shapes, with each kind of bad credential: each
answers the exact code (and ErrorInfo) the contract gives it; and with an admin
token for every namespace none is refused, so the refusals are the checks' doing.

Each method gets a minimal request naming a namespace of its own (in `namespace`,
or the header of a client stream); streams are read to their first response.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

import grpc
import pytest

from strata.v1 import access_pb2, admin_pb2
from strata_server.core.token_rules import new_secret
from tests.contract.helpers import details_of
from tests.security.contract import (
    EVERY_NAMESPACE,
    UNSCOPED,
    every_method,
    needed_role,
    path_of,
)
from tests.security.support import (
    SecureServer,
    invoke,
    message_class,
    unique,
    wait_until,
)

REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


@dataclass
class Credentials:
    """A channel per kind of caller, to one server, and the namespace requests name."""

    namespace: str
    channels: dict[str, grpc.Channel]


@pytest.fixture(scope="session")
def credentials(secure: SecureServer) -> Credentials:
    namespace = unique("matrix")
    revoked = unique("revoked")
    secrets = {
        "reader": secure.token("reader", "*"),
        "writer": secure.token("writer", "*"),
        "other namespace": secure.token("admin", unique("other")),
        "revoked": secure.token("writer", "*", name=revoked),
        "expired": secure.token("admin", "*", ttl=1),
    }
    secure.revoke(revoked)
    listed = secure.admin().ListTokens(access_pb2.ListTokensRequest(page_size=1000), timeout=30)
    wait_until(
        max(
            token.expire_time.ToDatetime().replace(tzinfo=UTC)
            for token in listed.tokens
            if token.HasField("expire_time")
        )
    )
    channels = {
        "no token": secure.channel(None),
        "malformed scheme": secure.channel(None, ("authorization", "Basic cm9vdDpyb290")),
        "malformed token": secure.channel("not-a-token"),
        "unknown": secure.channel(new_secret()),
        "revoked": secure.channel(secrets["revoked"]),
        "expired": secure.channel(secrets["expired"]),
        "wrong namespace": secure.channel(secrets["other namespace"]),
        "reader calling a write": secure.channel(secrets["reader"]),
        "writer calling an admin RPC": secure.channel(secrets["writer"]),
        "admin of every namespace": secure.channel(secure.root),
    }
    return Credentials(namespace, channels)


def minimal_request(method, namespace: str):
    """The smallest request of `method` that names `namespace`."""
    request = message_class(method.input_type)()
    fields = method.input_type.fields_by_name
    if "namespace" in fields:
        request.namespace = namespace
    if "header" in fields:
        request.header.namespace = namespace
        for name, value in (("owner", "o"), ("kind", "log"), ("name", "n")):
            if name in request.header.DESCRIPTOR.fields_by_name:
                setattr(request.header, name, value)
    if "list_services" in fields:  # reflection
        request.list_services = ""
    return request


Refusal = tuple[grpc.StatusCode, str, dict[str, str]]


def expected(method, case: str, namespace: str) -> Refusal | None:
    """The refusal the contract gives (code, ErrorInfo reason, metadata), or None
    when the call must get past authentication and authorization."""
    role = needed_role(method)
    path = path_of(method)
    if role is None or case == "admin of every namespace":
        return None
    if case in ("no token", "malformed scheme", "malformed token", "unknown", "revoked", "expired"):
        return grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", {}
    if case == "wrong namespace":
        if path in UNSCOPED:
            return None
        named = "*" if path in EVERY_NAMESPACE else namespace
        return grpc.StatusCode.PERMISSION_DENIED, "NAMESPACE_NOT_ALLOWED", {"namespace": named}
    if case == "reader calling a write":
        if role == "reader":
            return None
        return grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED", {"role": role}
    if case == "writer calling an admin RPC":
        if role != "admin":
            return None
        return grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED", {"role": "admin"}
    raise AssertionError(case)


@pytest.mark.parametrize("method", every_method(), ids=path_of)
def test_every_rpc_answers_each_caller_as_the_contract_says(method, credentials):
    request = minimal_request(method, credentials.namespace)
    wrong: list[str] = []
    for case, channel in credentials.channels.items():
        want = expected(method, case, credentials.namespace)
        try:
            invoke(channel, method, [request])
            error = None
        except grpc.RpcError as raised:
            error = raised
        if want is None:
            if error is not None and error.code() in REFUSED:
                wrong.append(f"{case}: refused with {error.code().name}: {error.details()}")
            continue
        code, reason, metadata = want
        if error is None:
            wrong.append(f"{case}: succeeded, expected {code.name}")
            continue
        if error.code() != code:
            wrong.append(f"{case}: {error.code().name} ({error.details()}), expected {code.name}")
            continue
        info, _ = details_of(error)
        if info.reason != reason:
            wrong.append(f"{case}: reason {info.reason}, expected {reason}")
        for key, value in metadata.items():
            if info.metadata.get(key) != value:
                wrong.append(f"{case}: metadata {dict(info.metadata)}, expected {key}={value}")
    assert not wrong, f"{path_of(method)}:\n" + "\n".join(wrong)


ACROSS_NAMESPACES = {
    "GetUsage": admin_pb2.GetUsageRequest(all_namespaces=True),
    "CheckIntegrity": admin_pb2.CheckIntegrityRequest(all_namespaces=True),
    "GetIntegrityStatus": admin_pb2.GetIntegrityStatusRequest(all_namespaces=True),
    "RunCleanup": admin_pb2.RunCleanupRequest(all_namespaces=True, dry_run=True),
    "ListQuotas": access_pb2.ListQuotasRequest(),
    "ImportNamespace": admin_pb2.ImportNamespaceRequest(header=admin_pb2.ImportHeader()),
    "ListAuditEntries": admin_pb2.ListAuditEntriesRequest(namespace="*"),
}
"""Admin calls that name every namespace (or, for an import without a namespace,
whichever its archive names)."""


@pytest.mark.parametrize("name", ACROSS_NAMESPACES)
def test_calls_across_namespaces_need_a_token_for_every_namespace(name, credentials):
    method = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].methods_by_name[name]
    request = ACROSS_NAMESPACES[name]
    with pytest.raises(grpc.RpcError) as raised:
        invoke(credentials.channels["wrong namespace"], method, [request])
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info, _ = details_of(raised.value)
    assert (info.reason, info.metadata["namespace"]) == ("NAMESPACE_NOT_ALLOWED", "*")
    try:
        invoke(credentials.channels["admin of every namespace"], method, [request])
    except grpc.RpcError as error:
        assert error.code() not in REFUSED, error.details()
