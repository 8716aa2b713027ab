"""Server reflection that answers with the proto comments.

The generated `*_pb2` modules embed descriptors without source info, and
grpcio-reflection serializes files through `FileDescriptor.CopyToProto`, which
drops it anyway: `grpcurl describe` would print every method and none of its
documentation. `descriptors.binpb` is a FileDescriptorSet of strata.v1 and its
imports that `buf build` wrote with source info (`make gen` writes it, `make
check` fails when it is stale); this servicer answers as grpcio-reflection
does, then swaps each file it returns for that file's documented copy. Files
not in the set (health, reflection itself) go out as grpcio-reflection made them.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

_DESCRIPTORS = "descriptors.binpb"


def documented_files() -> dict[str, bytes]:
    """Each file of the committed descriptor set, serialized with its comments, by name."""
    files = descriptor_pb2.FileDescriptorSet.FromString(
        resources.files(__package__).joinpath(_DESCRIPTORS).read_bytes()
    )
    return {file.name: file.SerializeToString() for file in files.file}


class DocumentedReflection(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """grpcio-reflection's servicer, answering with documented file descriptors."""

    def __init__(self, service_names: tuple[str, ...], files: dict[str, bytes]) -> None:
        super().__init__(service_names)
        self._files = files

    def _document(
        self, response: reflection_pb2.ServerReflectionResponse
    ) -> reflection_pb2.ServerReflectionResponse:
        if response.HasField("file_descriptor_response"):
            protos = response.file_descriptor_response.file_descriptor_proto
            for index, serialized in enumerate(protos):
                name = descriptor_pb2.FileDescriptorProto.FromString(serialized).name
                protos[index] = self._files.get(name, serialized)
        return response

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._document(super()._file_by_filename(request, filename))

    def _file_containing_symbol(self, request: Any, symbol: str) -> Any:
        return self._document(super()._file_containing_symbol(request, symbol))

    def _file_containing_extension(self, request: Any, containing_type: str, number: int) -> Any:
        return self._document(super()._file_containing_extension(request, containing_type, number))


def enable(server: grpc.aio.Server, service_names: tuple[str, ...]) -> None:
    """Serve reflection for Strata's services, health and reflection itself."""
    names = (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        DocumentedReflection(names, documented_files()), server
    )
