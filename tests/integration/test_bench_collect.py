"""``python -m turbogroup bench``'s collection rows on real Redis and
PostgreSQL: each round restores the saved group as a user would, plain
Celery on one side and ``install()`` on the other (the bench checks the
class it restored, so a bench timing Celery's class twice fails)."""

from __future__ import annotations

import pytest

from turbogroup.__main__ import main
from turbogroup.benchkit import collect
from turbogroup.install import installed

# Celery's restored group registers its results on its app's backend for
# good; when the closed app is freed, each one's __del__ unsubscribes
# through the stopped result consumer, which opens a new connection that
# nothing closes (Celery 5.7.0's own behaviour; the bench's rounds close
# every connection they open themselves).
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def collect_rows(out: str) -> dict[str, list[str]]:
    table = out.split("Collection of N stored results", 1)[1]
    return {
        " ".join(row[:2]): row
        for row in map(str.split, table.splitlines()[2:])
        if len(row) > 2 and row[1].startswith("(")
    }


def test_bench_times_collection_of_restored_groups(redis_url, postgres_url, capsys):
    argv = ["bench", "--sizes", "40", "--transports", "memory", "--rounds", "1", "--no-rss"]
    argv += ["--plot", "", "--redis-url", redis_url, "--database-url", postgres_url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = collect_rows(out)
    for backend in ("redis", "database"):
        for operation in collect.OPERATIONS:
            row = rows[f"{operation} ({backend})"]
            assert row[2] == "40" and row[-1].endswith("x"), row
    assert not installed()


def test_restore_gives_each_side_its_class(redis_url):
    stored = collect.RedisResults(f"{redis_url}/11", "tgtest-restore")
    try:
        saved = (stored.save(stored.store(5)), 5)
        for impl in collect.IMPLS:
            assert collect.collect_once(stored, impl, "get", saved, 30) >= 0
        with pytest.raises(AssertionError, match="celery: restore gave"):
            with collect.user_setup("turbogroup"):
                stored.restore("celery", saved[0])
    finally:
        stored.close()
    assert not installed()
