"""The RabbitMQ message size limit the dispatch refuses over, by default."""

from __future__ import annotations

import pytest

from turbogroup.publish.amqp_wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    RABBITMQ_4_MAX_MESSAGE_SIZE,
    default_max_message_size,
)


@pytest.mark.parametrize(
    ("properties", "limit"),
    [
        ({"version": "3.10.8"}, DEFAULT_MAX_MESSAGE_SIZE),
        ({"version": "3.13.7"}, DEFAULT_MAX_MESSAGE_SIZE),
        ({"version": "4.0.5"}, RABBITMQ_4_MAX_MESSAGE_SIZE),
        ({"version": "4.1.0-rc.1"}, RABBITMQ_4_MAX_MESSAGE_SIZE),
        ({b"version": b"4.2.1"}, RABBITMQ_4_MAX_MESSAGE_SIZE),
        ({}, DEFAULT_MAX_MESSAGE_SIZE),  # not announced: 3.x's
        ({"version": "unknown"}, DEFAULT_MAX_MESSAGE_SIZE),
    ],
)
def test_the_default_follows_the_server_version(properties, limit):
    assert default_max_message_size(properties) == limit
    assert RABBITMQ_4_MAX_MESSAGE_SIZE == 16 * 1024 * 1024
    assert DEFAULT_MAX_MESSAGE_SIZE == 128 * 1024 * 1024
