"""A fresh clone gets exactly the locked environment, and the CLI explains itself.

Two clones install byte-identical packages because `make` installs only from
requirements.lock with --require-hashes and --no-deps; this test holds the
installed environment to the lock, so an install step that resolved on its own
(or a package added to pyproject.toml without `make lock`) fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
STRATA = Path(sys.executable).with_name("strata")
LOCAL_PROJECTS = {"strata-server", "strata-client"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = re.findall(
        r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M
    )
    return {normalize(name): version for name, version in pins}


def test_the_installed_environment_is_exactly_the_lock() -> None:
    installed = {
        normalize(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    for project in LOCAL_PROJECTS:
        assert project in installed, f"{project} is installed from the checkout"
        del installed[project]
    assert installed == locked()


def test_every_locked_package_carries_hashes() -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / "requirements.lock").read_text())
    for block in blocks:
        if "==" in block:
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_the_lock_names_no_index_and_no_local_project() -> None:
    text = (ROOT / "requirements.lock").read_text()
    assert "://" not in text
    assert not LOCAL_PROJECTS & set(locked())


def test_the_client_keeps_ranges_for_its_users() -> None:
    """A library must not pin the people who install it: only ranges there."""
    client = (ROOT / "clients/python/pyproject.toml").read_text()
    dependencies = re.search(r"dependencies = \[(.*?)\]", client, re.S)
    assert dependencies is not None
    assert "==" not in dependencies.group(1)


def test_version_prints_server_and_api_versions() -> None:
    result = subprocess.run([str(STRATA), "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"strata \d+\.\d+\.\d+\S* \(API strata\.v1\)\n", result.stdout)


def test_serve_help_shows_defaults_and_flags_as_flags() -> None:
    result = subprocess.run(
        [str(STRATA), "serve", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    words = " ".join(text.split())  # click wraps help at 80 columns
    assert "[default: 127.0.0.1:50051]" in words
    assert "[default: sqlite:///./data/strata.db]" in words
    assert "<bool>" not in text
    assert re.search(r"^\s+--migrate\s{2,}\S", text, re.M), text
    assert re.search(r"^\s+--help\s{2,}Show", text, re.M), text


def test_strata_listen_applies_when_no_flag_is_given(tmp_path: Path) -> None:
    port = free_port()
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [str(STRATA), "serve", "--port-file", str(port_file)],
        env={
            **os.environ,
            "STRATA_LISTEN": f"127.0.0.1:{port}",
            "STRATA_DATABASE_URL": f"sqlite:///{tmp_path / 'strata.db'}",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        import time

        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        assert port_file.read_text() == str(port)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
