"""The breaking-change check compares proto/ with the committed API baseline.

It used to compare a clone of main with main itself, so it could never fail. A
renumbered field is the kind of break Python code never notices (it names fields,
not numbers) and every other client's wire format does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def api_check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(tree), "api-check"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_renumbered_field_fails_the_check_and_restoring_it_passes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("Makefile", "buf.yaml"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "proto", tree / "proto")
    (tree / ".venv").symlink_to(ROOT / ".venv")

    records = tree / "proto/strata/v1/records.proto"
    original = records.read_text()
    assert api_check(tree).returncode == 0

    # GetRecordRequest.collection moves from its number to an unused one.
    message = re.search(r"message GetRecordRequest \{.*?\n\}", original, re.S)
    assert message is not None
    field = re.search(r"string collection = (\d+);", message.group(0))
    assert field is not None
    renumbered = message.group(0).replace(
        f"string collection = {field.group(1)};", "string collection = 99;"
    )
    records.write_text(original.replace(message.group(0), renumbered))
    broken = api_check(tree)
    assert broken.returncode != 0
    # buf's own message, naming the field by its old number.
    assert (
        f'Previously present field "{field.group(1)}" with name "collection" '
        'on message "GetRecordRequest" was deleted.'
    ) in broken.stdout

    records.write_text(original)
    assert api_check(tree).returncode == 0
