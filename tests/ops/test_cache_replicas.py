"""The record cache across replicas: two server processes on one PostgreSQL and one
Redis, with writes and reads of the same records interleaved through both. No read
may return a state older than the last write acknowledged before the read began;
and when redis-server is killed under that load, no record RPC fails, and the hit
rate comes back once it restarts.

The checker: each record has one writer thread, which numbers its writes (steps)
and stores the step in the record's data (a delete is a step too). Before a read a
reader notes the record's last acknowledged step `lo`; after it, the newest step
whose write had begun, `hi`. A found record must carry a step in [lo, hi]; NOT_FOUND
is right only if the record was absent at some step in [lo, hi].
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
import pytest

from strata.v1 import admin_pb2, admin_pb2_grpc, cache_pb2, cache_pb2_grpc, records_pb2
from tests.conftest import Stubs
from tests.contract.helpers import expect_error, raised_by, stubs_over, to_struct
from tests.support.redis import RedisServer
from tests.support.server import StrataProcess

COLLECTION = "shared"
RECORDS = 12
WRITERS = 3
READERS = 4


@dataclass
class Ledger:
    """What the writers have begun and acknowledged, per record."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[str, int] = field(default_factory=dict)
    begun: dict[str, int] = field(default_factory=dict)
    absent: dict[str, set[int]] = field(default_factory=dict)  # steps where it is gone

    def window(self, record_id: str) -> int:
        with self.lock:
            return self.acked.get(record_id, 0)

    def newest(self, record_id: str) -> int:
        with self.lock:
            return self.begun.get(record_id, 0)

    def absent_within(self, record_id: str, lo: int, hi: int) -> bool:
        with self.lock:
            gone = self.absent.get(record_id, set())
        return lo == 0 or any(lo <= step <= hi for step in gone)


@dataclass
class Load:
    """Threads writing and reading through every replica until stopped."""

    replicas: list[Stubs]
    ledger: Ledger = field(default_factory=Ledger)
    stop: threading.Event = field(default_factory=threading.Event)
    ops: int = 0
    stale: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    count_lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        ids = [f"r{i:02d}" for i in range(RECORDS)]
        for w in range(WRITERS):
            owned = ids[w::WRITERS]
            self.threads.append(threading.Thread(target=self._write, args=(owned, w)))
        for r in range(READERS):
            self.threads.append(threading.Thread(target=self._read, args=(ids, r)))
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
            assert not thread.is_alive()

    def _count(self) -> None:
        with self.count_lock:
            self.ops += 1

    def _call(self, call: Callable[[], object], what: str) -> object | None:
        try:
            result = call()
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise
            self.failures.append(f"{what}: {error.code().name} {error.details()}")
            return None
        self._count()
        return result

    def _write(self, owned: list[str], seed: int) -> None:
        rng = random.Random(seed)
        ledger = self.ledger
        exists = dict.fromkeys(owned, False)
        while not self.stop.is_set():
            record_id = rng.choice(owned)
            stubs = rng.choice(self.replicas)
            with ledger.lock:
                step = ledger.begun.get(record_id, 0) + 1
                ledger.begun[record_id] = step
            if exists[record_id] and rng.random() < 0.15:
                ledger.absent.setdefault(record_id, set()).add(step)
                request: object = records_pb2.DeleteRecordRequest(
                    collection=COLLECTION, id=record_id
                )
                done = self._call(partial(stubs.records.DeleteRecord, request), "delete")
                exists[record_id] = done is None  # unknown outcome: treat as present
            else:
                update = records_pb2.UpdateRecordRequest(
                    collection=COLLECTION,
                    id=record_id,
                    data=to_struct({"step": step}),
                    allow_missing=True,
                )
                done = self._call(partial(stubs.records.UpdateRecord, update), "update")
                exists[record_id] = True
            if done is not None:
                with ledger.lock:
                    ledger.acked[record_id] = step

    def _read(self, ids: list[str], seed: int) -> None:
        rng = random.Random(100 + seed)
        ledger = self.ledger
        while not self.stop.is_set():
            stubs = rng.choice(self.replicas)
            if rng.random() < 0.5:
                record_id = rng.choice(ids)
                lo = ledger.window(record_id)
                request = records_pb2.GetRecordRequest(collection=COLLECTION, id=record_id)
                try:
                    record = self._call(partial(stubs.records.GetRecord, request), "get")
                except grpc.RpcError:
                    record = "absent"
                self._check(record_id, lo, record)
            else:
                chosen = rng.sample(ids, 4)
                los = {i: ledger.window(i) for i in chosen}
                batch = records_pb2.BatchGetRecordsRequest(collection=COLLECTION, ids=chosen)
                response = self._call(partial(stubs.records.BatchGetRecords, batch), "batch")
                if isinstance(response, records_pb2.BatchGetRecordsResponse):
                    found = {r.id: r for r in response.records}
                    for i in chosen:
                        self._check(i, los[i], found.get(i, "absent"))

    def _check(self, record_id: str, lo: int, record: object) -> None:
        if record is None:
            return  # a failed call, counted in failures
        hi = self.ledger.newest(record_id)
        if record == "absent":
            if not self.ledger.absent_within(record_id, lo, hi):
                self.stale.append(f"{record_id}: NOT_FOUND, acked step {lo}, newest {hi}")
            return
        assert isinstance(record, records_pb2.Record)
        step = int(record.data["step"])
        if not lo <= step <= hi:
            self.stale.append(f"{record_id}: step {step}, acked step {lo}, newest {hi}")


def _stats(server: StrataProcess) -> admin_pb2.CacheStats:
    with server.channel() as channel:
        info = admin_pb2_grpc.AdminServiceStub(channel).GetServerInfo(
            admin_pb2.GetServerInfoRequest(), timeout=10
        )
    return info.cache_stats


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def replicas(
    database_url: Callable[[str], str], tmp_path: Path, redis_server: RedisServer
) -> Iterator[tuple[StrataProcess, StrataProcess]]:
    """Two servers on one PostgreSQL database and one Redis."""
    url = database_url("postgres")
    env = {"STRATA_REDIS_URL": redis_server.url, "STRATA_REDIS_TIMEOUT_SECONDS": "0.5"}
    a = StrataProcess(url, tmp_path / "a", **env)
    b = StrataProcess(url, tmp_path / "b", **env)
    a.start()
    try:
        b.start()
    except BaseException:
        a.stop()
        raise
    yield a, b
    for server in (a, b):
        assert server.stop() == 0, server.log()
        assert "Traceback" not in server.log(), server.log()


@pytest.fixture
def load(replicas: tuple[StrataProcess, StrataProcess]) -> Iterator[Load]:
    channels = [server.channel() for server in replicas]
    yield Load([stubs_over(channel) for channel in channels])
    for channel in channels:
        channel.close()


def _run_until(load: Load, ops: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while load.ops < ops and time.monotonic() < deadline:
        time.sleep(0.05)


def test_no_read_is_older_than_an_acknowledged_write(
    replicas: tuple[StrataProcess, StrataProcess], load: Load
) -> None:
    load.start()
    try:
        _run_until(load, 4000, 60)
    finally:
        load.finish()
    print(f"{load.ops} operations through two replicas")
    assert not load.failures, load.failures[:10]
    assert not load.stale, load.stale[:10]
    assert load.ops >= 2000
    for server in replicas:  # the cache really served reads on both
        stats = _stats(server)
        assert stats.hits > 100 and stats.misses > 0 and stats.outages == 0, stats


def test_redis_killed_under_load_fails_no_record_rpc_and_recovers(
    replicas: tuple[StrataProcess, StrataProcess], load: Load, redis_server: RedisServer
) -> None:
    load.start()
    try:
        _run_until(load, 600, 30)
        redis_server.kill()
        killed_at = load.ops
        _run_until(load, killed_at + 600, 30)
        down = [_stats(server) for server in replicas]
        redis_server.start()  # same port, empty
        restarted = time.monotonic()
        recovered = False
        while time.monotonic() < restarted + 20 and not recovered:
            before = [_stats(server) for server in replicas]
            time.sleep(1.0)
            after = [_stats(server) for server in replicas]
            recovered = all(
                a.available and a.hits - b.hits > 2 * (a.misses - b.misses)
                for a, b in zip(after, before, strict=True)
            )
        print(f"hit rate back {time.monotonic() - restarted:.1f} s after the restart")
        ops_after = load.ops
        _run_until(load, ops_after + 300, 30)
    finally:
        load.finish()
    print(f"{load.ops} operations, {load.ops - killed_at} after the kill")
    assert not load.failures, load.failures[:10]
    assert not load.stale, load.stale[:10]
    for stats in down:
        assert not stats.available and stats.outages == 1 and stats.bypassed > 0, stats
    assert recovered, [_stats(server) for server in replicas]
    for server in replicas:
        assert server.log().count("cache unreachable") == 1, server.log()


def test_postgres_without_redis_has_no_cache(
    database_url: Callable[[str], str], tmp_path: Path
) -> None:
    server = StrataProcess(database_url("postgres"), tmp_path / "s")
    server.start()
    try:
        with server.channel() as channel:
            info = admin_pb2_grpc.AdminServiceStub(channel).GetServerInfo(
                admin_pb2.GetServerInfoRequest(), timeout=10
            )
            assert info.cache_backend == "none"
            assert not info.cache_stats.record_cache_enabled
            cache = cache_pb2_grpc.CacheServiceStub(channel)
            expect_error(
                lambda: cache.Get(cache_pb2.CacheServiceGetRequest(key="k"), timeout=10),
                grpc.StatusCode.FAILED_PRECONDITION,
                "CACHE_NOT_CONFIGURED",
            )
            error = raised_by(
                lambda: cache.Set(cache_pb2.CacheServiceSetRequest(key="k", value=b"v"))
            )
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "STRATA_REDIS_URL" in (error.details() or "")
    finally:
        assert server.stop() == 0
