"""Shared fixtures: real services on loopback, each test on its own names."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import hypothesis  # noqa: F401  (see below)
import pytest

# hypothesis is imported here, at the top of the import stack: imported
# first deep in a chain of test-module imports (a few integration test
# files run alone), pytest's rewrite of its modules raised "SystemError:
# AST constructor recursion depth mismatch" on CPython 3.11.7.

REDIS_HOST = os.environ.get("TURBOGROUP_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TURBOGROUP_TEST_REDIS_PORT", "6379"))
# Our own db numbers, so tests never touch anybody else's keys.
REDIS_BROKER_DB = 11
REDIS_BACKEND_DB = 12
AMQP_HOST = os.environ.get("TURBOGROUP_TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("TURBOGROUP_TEST_AMQP_PORT", "5672"))
POSTGRES_HOST = os.environ.get("TURBOGROUP_TEST_POSTGRES_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("TURBOGROUP_TEST_POSTGRES_PORT", "5432"))
# Our own database, so tests never touch anybody else's tables.
POSTGRES_DB = "turbogroup_test"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable(REDIS_HOST, REDIS_PORT):
        pytest.fail(
            f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}: "
            "start it (the README's test command does) before running these tests"
        )
    return f"redis://{REDIS_HOST}:{REDIS_PORT}"


@pytest.fixture(scope="session")
def amqp_url() -> str:
    if not _reachable(AMQP_HOST, AMQP_PORT):
        pytest.fail(
            f"RabbitMQ is not running on {AMQP_HOST}:{AMQP_PORT}: "
            "start it (the README's test command does) before running these tests"
        )
    return f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}//"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A SQLAlchemy URL of turbogroup's own test database (created here
    when missing); each test makes and drops its own tables in it."""
    if not _reachable(POSTGRES_HOST, POSTGRES_PORT):
        pytest.fail(
            f"PostgreSQL is not running on {POSTGRES_HOST}:{POSTGRES_PORT}: "
            "start it (the README's test command does) before running these tests"
        )
    import psycopg2

    server = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}"
    conn = psycopg2.connect(f"{server}/postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DB,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {POSTGRES_DB}")
    finally:
        conn.close()
    return f"{server}/{POSTGRES_DB}"


@pytest.fixture
def unique_name() -> str:
    return f"turbogroup-test-{uuid.uuid4().hex[:12]}"


def kombu_list_key(queue: str, priority: int, sep: str | None = None) -> str:
    """The Redis list kombu's ``Channel._put`` pushes a message of this
    priority to, computed by kombu itself (default priority steps)."""
    from kombu.transport.redis import Channel

    class _Keys(Channel):
        def __init__(self) -> None:  # only the priority helpers are used
            if sep is not None:
                self.sep = sep

    channel = _Keys()
    clamped = max(min(priority, channel.max_priority), channel.min_priority)
    return channel._q_for_pri(queue, clamped)


@pytest.fixture
def dispatch_reports(caplog):
    """The ``DispatchReport`` of every bulk dispatch in the test, in order:
    who built each message (turbogroup's encoder or Celery's publish)."""
    caplog.set_level(logging.DEBUG, logger="turbogroup.dispatch")

    def reports():
        return [r.turbogroup_dispatch for r in caplog.records if hasattr(r, "turbogroup_dispatch")]

    return reports
