"""Crashes and shutdowns: an acknowledged write survives `kill -9`, a Commit is never
half-applied, and SIGTERM is a clean exit."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

import grpc

from strata.v1 import records_pb2, transaction_pb2
from tests.contract.helpers import (
    batch_get,
    create,
    create_write,
    data_of,
    list_all,
    stubs_over,
    to_struct,
)
from tests.support.server import StrataProcess

COLLECTION = "crash"
BATCH_SIZE = 5
LOAD_SECONDS = 1.5
CALL_TIMEOUT = 5.0


class Load:
    """Writer threads against one server, recording every acknowledged write."""

    def __init__(self, process: StrataProcess) -> None:
        self.channel = process.channel()
        self.stubs = stubs_over(self.channel)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked_records: list[str] = []
        self.attempted_batches: list[str] = []
        self.acked_batches: list[str] = []
        self.threads: list[threading.Thread] = []

    def _loop(self, write: Callable[[int], None]) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                write(i)
            except grpc.RpcError:
                time.sleep(0.01)  # the server is going or gone; the outcome is unknown
            i += 1

    def _create(self, name: str, i: int) -> None:
        record_id = f"{name}-{i}"
        request = records_pb2.CreateRecordRequest(
            collection=COLLECTION, record_id=record_id, data=to_struct({"single": name, "i": i})
        )
        self.stubs.records.CreateRecord(request, timeout=CALL_TIMEOUT)
        with self.lock:
            self.acked_records.append(record_id)

    def _commit(self, name: str, i: int) -> None:
        batch = f"{name}-{i}"
        writes = [
            create_write(COLLECTION, f"{batch}-{k}", {"batch": batch, "k": k})
            for k in range(BATCH_SIZE)
        ]
        with self.lock:
            self.attempted_batches.append(batch)
        self.stubs.tx.Commit(transaction_pb2.CommitRequest(writes=writes), timeout=CALL_TIMEOUT)
        with self.lock:
            self.acked_batches.append(batch)

    def start(self, creators: int = 2, committers: int = 2) -> None:
        for n in range(creators):
            self._spawn(lambda i, name=f"s{n}": self._create(name, i))
        for n in range(committers):
            self._spawn(lambda i, name=f"b{n}": self._commit(name, i))

    def _spawn(self, write: Callable[[int], None]) -> None:
        thread = threading.Thread(target=self._loop, args=(write,), daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(CALL_TIMEOUT * 2)
        self.channel.close()


def _assert_durable(process: StrataProcess, load: Load) -> None:
    """Every acknowledged write is there; every batch is wholly present or absent."""
    with process.channel() as channel:
        stubs = stubs_over(channel)
        for start in range(0, len(load.acked_records), 1000):
            chunk = load.acked_records[start : start + 1000]
            missing = list(batch_get(stubs, COLLECTION, chunk).missing_ids)
            assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
        batches: dict[str, set[int]] = defaultdict(set)
        for record in list_all(stubs, COLLECTION, filter="data.batch:*", page_size=1000):
            data = data_of(record)
            batches[data["batch"]].add(int(data["k"]))
        partial = {b: sorted(ks) for b, ks in batches.items() if ks != set(range(BATCH_SIZE))}
        assert not partial, f"partially applied commits: {partial}"
        assert set(batches) <= set(load.attempted_batches)
        lost = set(load.acked_batches) - set(batches)
        assert not lost, f"{len(lost)} acknowledged commits lost, e.g. {sorted(lost)[:5]}"
        # the restarted server still takes writes
        assert create(stubs, COLLECTION, "after-restart", {}).version == 1


def _run_load_then(process: StrataProcess, stop_server: Callable[[], object]) -> Load:
    load = Load(process)
    load.start()
    deadline = time.monotonic() + LOAD_SECONDS
    while time.monotonic() < deadline or not (load.acked_records and load.acked_batches):
        assert time.monotonic() < deadline + 10, "no write was acknowledged under load"
        time.sleep(0.05)
    stop_server()
    load.finish()
    return load


def test_kill_9_under_write_load_keeps_every_acknowledged_write(own_server):
    load = _run_load_then(own_server, own_server.kill)
    assert own_server.process is not None and own_server.process.returncode == -9
    own_server.start()
    _assert_durable(own_server, load)


def test_sigterm_under_write_load_exits_0_and_keeps_every_acknowledged_write(own_server):
    statuses: list[int] = []
    load = _run_load_then(own_server, lambda: statuses.append(own_server.stop()))
    assert statuses == [0], own_server.log()
    assert "Traceback" not in own_server.log()
    own_server.start()
    _assert_durable(own_server, load)


def test_sigterm_when_idle_exits_0(own_server):
    assert own_server.stop() == 0, own_server.log()
    assert "Traceback" not in own_server.log()
