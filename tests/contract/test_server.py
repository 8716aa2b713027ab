"""Server-wide endpoints: AdminService.GetServerInfo, health checking and reflection."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from strata.v1 import admin_pb2
from tests.support.server import ROOT

SERVICES = ("strata.v1.RecordService", "strata.v1.TransactionService", "strata.v1.AdminService")


def test_get_server_info_describes_the_running_server(stubs, shape):
    info = stubs.admin.GetServerInfo(admin_pb2.GetServerInfoRequest())
    assert info.database_backend == shape
    assert info.version
    newest = max(
        path.name.removesuffix(".sql")
        for path in (ROOT / "migrations" / shape).glob("*.sql")
        if not path.name.endswith(".rollback.sql")
    )
    assert info.schema_version == newest
    assert "records" in info.capabilities
    assert info.cache_backend
    assert info.blob_backend
    assert info.start_time.ToDatetime(UTC) <= datetime.now(UTC)


def test_health_check_reports_serving(stubs):
    health = health_pb2_grpc.HealthStub(stubs.channel)
    for service in ("", *SERVICES):
        response = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service


def test_health_list_reports_every_service(stubs):
    """grpcurl's `Health/List` answers (the library's servicer left it UNIMPLEMENTED):
    every strata.v1 service and the server as a whole, each SERVING."""
    listed = health_pb2_grpc.HealthStub(stubs.channel).List(health_pb2.HealthListRequest())
    assert {"", *SERVICES} <= set(listed.statuses)
    for name, response in listed.statuses.items():
        assert response.status == health_pb2.HealthCheckResponse.SERVING, name


def _reflect(stubs, request: reflection_pb2.ServerReflectionRequest):
    reflection = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
    [response] = list(reflection.ServerReflectionInfo(iter([request])))
    return response


def test_reflection_lists_every_service(stubs):
    response = _reflect(stubs, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in response.list_services_response.service}
    assert {*SERVICES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_reflection_describes_the_record_service(stubs):
    response = _reflect(
        stubs,
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="strata.v1.RecordService"),
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    methods = {
        method.name
        for file in files
        for service in file.service
        if service.name == "RecordService"
        for method in service.method
    }
    assert {
        "CreateRecord",
        "GetRecord",
        "BatchGetRecords",
        "UpdateRecord",
        "DeleteRecord",
        "ListRecords",
        "CountRecords",
        "SearchRecords",
    } <= methods
