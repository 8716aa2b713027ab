"""Runs `strata` commands as an operator runs them, one process per command, without
paying for the interpreter's imports each time.

`python -m strata_server ...` spends most of a short command importing (typer,
pydantic, grpc, the client, the server's modules), and the suite runs over a hundred
commands. So the commands are forked from one process that imported the CLI once (a
"zygote", started on first use), and each child runs `python -m strata_server` from
there exactly as the interpreter would (`runpy`, with `sys.argv`, `sys.path[0]` and
`__main__` set as `-m` sets them), with the command's own environment, working
directory and standard streams. The child is a real process: its exit status, stdout
and stderr are what the caller gets, as from `subprocess.run`. Nothing in
`strata_server` or `strata` reads the environment at import time, so importing before
the environment is known changes nothing.

`strata serve` is started the same way (`spawn_strata`), from a second zygote that
imported the server too, which spares each of the suite's own servers most of its
start's CPU; it answers at once with the server's pid and reports its exit status
when it ends, so the caller holds it as it holds a `subprocess.Popen`. The plain
interpreter start is still exercised by the session's servers (`tests/conftest.py`),
which most tests use, and by tests/ops/test_environment.py.

    result = run_strata(["token", "list"], env=env, cwd=tmp_path, timeout=60)
    server = spawn_strata(["serve"], env=env, cwd=workdir, log=workdir / "server.log")
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_strata(
    args: list[str], *, env: dict[str, str], cwd: Path | str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m strata_server <args>` with exactly `env` as its environment, in `cwd`
    (default: this process's), stdin from /dev/null and both outputs captured as text;
    raises subprocess.TimeoutExpired, as `subprocess.run` does, after `timeout`."""
    return _zygote().run(list(args), env, str(cwd or os.getcwd()), timeout)


def spawn_strata(args: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Forked:
    """Start `python -m strata_server <args>` (a server: it is not waited for) with
    exactly `env`, in `cwd`, both outputs appended to `log`."""
    return _server_zygote().spawn(list(args), env, cwd, log)


class Forked:
    """A process the servers' zygote forked, held as the tests hold a
    `subprocess.Popen`: pid, returncode, poll, wait, send_signal, kill. Its exit
    status comes from the zygote (its parent), which writes it to `status`; signals
    go through a pidfd, so a pid the system gave to another process is never hit."""

    def __init__(self, pid: int, status: Path) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._status = status
        self._lock = threading.Lock()  # a test's threads may poll it at once
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already ended and reaped: the status says how
            self._pidfd = None

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None and self._status.exists():
                self.returncode = int(self._status.read_text())
                self._status.unlink()
                self._status.parent.rmdir()
                if self._pidfd is not None:
                    os.close(self._pidfd)
                    self._pidfd = None
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["strata", str(self.pid)], timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        with self._lock:
            if self.returncode is None and self._pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Zygote:
    """The client side: one zygote process, one command at a time (or, `servers`,
    one server started at a time, none waited for)."""

    def __init__(self, servers: bool = False) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("STRATA_")}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.cli", *(["--servers"] if servers else [])],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()
        atexit.register(self.close)

    def run(
        self, args: list[str], env: dict[str, str], cwd: str, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "strata_server", *args]
        with tempfile.TemporaryDirectory(prefix="strata-cli-") as folder:
            out, err = Path(folder, "stdout"), Path(folder, "stderr")
            request = {"args": args, "env": env, "cwd": cwd, "timeout": timeout}
            request |= {"stdout": str(out), "stderr": str(err)}
            answer = self._ask(request, "the strata CLI zygote exited")
            stdout, stderr = _text(out), _text(err)
        if answer["returncode"] is None:
            raise subprocess.TimeoutExpired(argv, timeout, stdout, stderr)
        return subprocess.CompletedProcess(argv, answer["returncode"], stdout, stderr)

    def spawn(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Forked:
        status = Path(tempfile.mkdtemp(prefix="strata-server-")) / "status"
        request = {"args": args, "env": env, "cwd": str(cwd), "stdout": str(log)}
        request |= {"stderr": str(log), "append": True, "status": str(status)}
        return Forked(self._ask(request, "the strata servers' zygote exited")["pid"], status)

    def _ask(self, request: dict[str, Any], gone: str) -> dict[str, Any]:
        """Send the zygote one request and read its one-line answer, one caller at a
        time; RuntimeError(`gone`) when it has exited."""
        with self._lock:
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps(request).encode() + b"\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(gone)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()  # the zygote ends at end of input
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


@functools.cache
def _zygote() -> _Zygote:
    return _Zygote()


@functools.cache
def _server_zygote() -> _Zygote:
    return _Zygote(servers=True)


def _text(path: Path) -> str:
    """A captured stream as `subprocess.run(text=True)` returns it."""
    data = path.read_bytes() if path.exists() else b""
    return data.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


# --- the zygote ---------------------------------------------------------------------


def _serve() -> None:
    """Import the CLI once, then fork one child per request line on stdin; answer each
    with its exit status (null after a timeout) on stdout."""
    import strata_server.cli.main  # noqa: F401  (the import every child is spared)

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request))
        answers.write(json.dumps({"returncode": _wait(pid, request["timeout"])}).encode())
        answers.write(b"\n")
        answers.flush()


SERVER_MODULES = (
    "strata_server.cli.main",
    "strata_server.app",
    "strata_server.backends",
    "strata_server.logs",
)
"""What `strata serve` imports on its way to serving."""


def _serve_servers() -> None:
    """Import the server once, then fork one child per request line on stdin without
    waiting for it: answer its pid at once, and when it ends write its exit status
    to the request's status file (whole, by a rename)."""
    import importlib

    for module in SERVER_MODULES:  # the imports every server is spared
        importlib.import_module(module)

    requests, answers = sys.stdin.fileno(), sys.stdout.buffer
    pending = b""
    running: dict[int, tuple[int, str]] = {}  # pidfd: (pid, status file)
    while True:
        ready, _, _ = select.select([requests, *running], [], [])
        for handle in ready:
            if handle == requests:
                continue
            pid, status = running.pop(handle)
            os.close(handle)
            _, code = os.waitpid(pid, 0)
            Path(f"{status}.new").write_text(str(os.waitstatus_to_exitcode(code)))
            os.replace(f"{status}.new", status)
        if requests not in ready:
            continue
        data = os.read(requests, 65536)
        if not data:
            return  # end of input: the suite is done; servers still running are orphans
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                for handle in running:
                    os.close(handle)
                os._exit(_child(request))
            running[os.pidfd_open(pid)] = (pid, request["status"])
            answers.write(json.dumps({"pid": pid}).encode() + b"\n")
            answers.flush()


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit status as subprocess reports it (-N for signal N), or None
    once `timeout` passed (the child is killed)."""
    handle = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([handle], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(handle)
    return os.waitstatus_to_exitcode(status) if ready else None


def _child(request: dict[str, Any]) -> int:
    """Become `python -m strata_server <args>` and return its exit status."""
    try:
        os.chdir(request["cwd"])
        writing = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if request.get("append") else os.O_TRUNC)
        for fd, path, flags in (
            (0, os.devnull, os.O_RDONLY),
            (1, request["stdout"], writing),
            (2, request["stderr"], writing),
        ):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["strata_server", *request["args"]]
        sys.path[0] = request["cwd"]
    except BaseException:
        traceback.print_exc()
        return 1
    import runpy

    try:
        runpy.run_module("strata_server", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit:
        code = _exit_code(exit.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        traceback.print_exc()
    return code


def _exit_code(value: object) -> int:
    """What the interpreter exits with for `sys.exit(value)`."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


if __name__ == "__main__":
    _serve_servers() if sys.argv[1:] == ["--servers"] else _serve()
