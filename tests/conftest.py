"""Shared fixtures: real services on loopback, each test on its own names."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

REDIS_HOST = os.environ.get("TURBOGROUP_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TURBOGROUP_TEST_REDIS_PORT", "6379"))
# Our own db numbers, so tests never touch anybody else's keys.
REDIS_BROKER_DB = 11
REDIS_BACKEND_DB = 12
AMQP_HOST = os.environ.get("TURBOGROUP_TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("TURBOGROUP_TEST_AMQP_PORT", "5672"))


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


@pytest.fixture
def unique_name() -> str:
    return f"turbogroup-test-{uuid.uuid4().hex[:12]}"
