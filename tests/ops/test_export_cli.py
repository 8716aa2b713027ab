"""`strata export` and `strata import` as an operator runs them: subprocesses
against a live server."""

from __future__ import annotations

from pathlib import Path

from tests.contract.archive_support import checksums, fill, namespace
from tests.ops.test_migrations import strata
from tests.support.server import StrataProcess


def test_export_then_import_with_each_conflict_policy(
    server: StrataProcess, tmp_path: Path
) -> None:
    source, target = namespace(), namespace()
    with server.channel() as channel:
        fill(channel, source)
    # named relative to the working folder, as an operator would: a long absolute path
    # would wrap the import table's title ("imported <archive> into <namespace>")
    archive = tmp_path / "source.tar"
    out = strata("export", source, "-o", archive.name, "--server", server.target, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert archive.exists() and not (tmp_path / "source.tar.partial").exists()
    assert "records" in out.stdout and "12" in out.stdout and f"exported {source}" in out.stdout

    first = strata(
        "import", archive.name, "--namespace", target, "--server", server.target, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert f"into {target}" in first.stdout
    records = next(line for line in first.stdout.splitlines() if "records" in line)
    assert records.split("│")[2].strip() == "12"

    refused = strata("import", archive.name, "-n", target, "--server", server.target, cwd=tmp_path)
    assert refused.returncode == 2
    assert (
        refused.stderr.startswith("strata: ALREADY_EXISTS:") and "Traceback" not in refused.stderr
    )

    skipped = strata(
        "import",
        archive.name,
        "-n",
        target,
        "--on-conflict",
        "skip",
        "--server",
        server.target,
        cwd=tmp_path,
    )
    assert skipped.returncode == 0, skipped.stderr
    records = next(line for line in skipped.stdout.splitlines() if "records" in line)
    assert [cell.strip() for cell in records.split("│")[2:5]] == ["0", "12", "0"]

    again = tmp_path / "target.tar"
    assert (
        strata(
            "export", target, "-o", str(again), "--server", server.target, cwd=tmp_path
        ).returncode
        == 0
    )
    a, b = checksums(archive.read_bytes()), checksums(again.read_bytes())
    assert {k: v for k, v in a.items() if "audit" not in k} == {
        k: v for k, v in b.items() if "audit" not in k
    }


def test_a_bad_archive_or_option_is_one_line_and_exit_2(
    server: StrataProcess, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not an archive" * 100)
    result = strata("import", str(junk), "--server", server.target, cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.startswith("strata: INVALID_ARGUMENT:") and "Traceback" not in result.stderr
    )
    policy = strata("import", str(junk), "--on-conflict", "merge", cwd=tmp_path)
    assert policy.returncode == 2 and "--on-conflict" in policy.stderr
    missing = strata("import", str(tmp_path / "nope.tar"), cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unreachable = strata(
        "export", "x", "-o", str(tmp_path / "x.tar"), "--server", "127.0.0.1:1", cwd=tmp_path
    )
    assert unreachable.returncode == 2 and "cannot reach the server" in unreachable.stderr
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "x.tar.partial").exists()
