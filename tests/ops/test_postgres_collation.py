"""Production PostgreSQL databases rarely use the "C" collation the test server has.

Under another default collation, strings in data sort by that collation (a known
difference from SQLite, stated in the README), but paging must stay exact and
filters still compare by code point."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.contract.helpers import create_many, list_ids, stubs_over
from tests.support.pg import PG_BIN
from tests.support.server import StrataProcess

NAMES = {"x1": "b", "x2": "B", "x3": "a", "x4": "Z", "x5": "é", "x6": "ab"}


@pytest.fixture
def strata_on_icu_database(pg, tmp_path) -> Iterator[StrataProcess]:
    """A server on a fresh database whose default collation is ICU's en-US."""
    name = f"strata_icu_{uuid.uuid4().hex[:8]}"
    create = (
        f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        " LOCALE 'C.UTF-8'"
    )
    subprocess.run(
        [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.dsn, "-c", create],
        check=True,
        capture_output=True,
    )
    process = StrataProcess(pg.url(name), tmp_path / "strata")
    process.start()
    yield process
    process.stop()


def test_paging_stays_exact_and_filters_compare_by_code_point_under_a_locale_collation(
    strata_on_icu_database,
):
    with strata_on_icu_database.channel() as channel:
        stubs = stubs_over(channel)
        create_many(stubs, "names", {key: {"n": name} for key, name in NAMES.items()})
        one_page = list_ids(stubs, "names", order_by="data.n")
        assert sorted(one_page) == sorted(NAMES)
        assert list_ids(stubs, "names", order_by="data.n", page_size=2) == one_page
        assert list_ids(stubs, "names", order_by="data.n desc", page_size=2) == one_page[::-1]
        above_b = sorted(key for key in NAMES if NAMES[key] > "B")
        assert sorted(list_ids(stubs, "names", filter='data.n > "B"')) == above_b
