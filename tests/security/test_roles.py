"""The server's role table against the contract, method by method, walking every
service descriptor: a new RPC without an entry in api/method_rules.py fails here."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from strata_server.api import method_rules
from strata_server.core.access_rules import Role
from tests.security.contract import (
    OPEN,
    UNSCOPED,
    every_method,
    needed_role,
    path_of,
    served_services,
)


@pytest.mark.parametrize("method", every_method(), ids=path_of)
def test_every_method_has_the_role_the_contract_gives_it(method):
    service = method.containing_service.full_name
    wanted = needed_role(method)
    if wanted is None:
        assert service in method_rules.OPEN_SERVICES
        return
    roles = method_rules.ROLES.get(service, {})
    assert method.name in roles, f"{path_of(method)} has no role in api/method_rules.py ROLES"
    assert roles[method.name] == Role.parse(wanted), path_of(method)


def test_every_method_reads_its_namespace_or_is_declared_unscoped():
    guarded = [s for s in served_services() if s.full_name not in OPEN]
    rules = method_rules.rules(guarded)
    for service in guarded:
        for method in service.methods:
            rule = rules[path_of(method)]
            assert (rule.scope is None) == (path_of(method) in UNSCOPED), path_of(method)


def test_the_table_names_no_method_that_does_not_exist():
    served = {path_of(method) for method in every_method()}
    for service, methods in method_rules.ROLES.items():
        for name in methods:
            assert f"/{service}/{name}" in served, f"/{service}/{name} is not a method"


def test_a_method_without_a_role_stops_the_rules_from_being_built():
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    with pytest.raises(LookupError, match="no role"):
        method_rules.rules([health])
