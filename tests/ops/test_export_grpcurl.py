"""The README's grpcurl line for ExportNamespace: the archive's chunks come base64 in
JSON messages, and joined they are the archive."""

from __future__ import annotations

import base64
import io
import json
import tarfile

from tests.contract.archive_support import fill, namespace
from tests.ops.test_grpcurl import grpcurl
from tests.support.server import StrataProcess


def test_grpcurl_exports_a_namespace(server: StrataProcess) -> None:
    ns = namespace()
    with server.channel() as channel:
        fill(channel, ns)
    out = grpcurl(
        server, "-d", json.dumps({"namespace": ns}), "strata.v1.AdminService/ExportNamespace"
    )
    decoder, at, messages = json.JSONDecoder(), 0, []
    while at < len(out.rstrip()):
        message, at = decoder.raw_decode(out, at)
        messages.append(message)
        while at < len(out) and out[at].isspace():
            at += 1
    assert "progress" in messages[0]
    assert messages[-1]["summary"]["counts"]["records"] == "12"
    archive = b"".join(base64.b64decode(m["chunk"]) for m in messages if "chunk" in m)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert tar.getnames()[-1] == "manifest.json"
