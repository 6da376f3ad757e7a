"""Celery's publish retry policy, applied to a whole step of a dispatch.

Celery retries a failed publish through kombu's ``Connection.ensure``:
``max_retries`` attempts (3 by default, ``None`` for ever), waiting
``interval_start`` seconds before the first and ``interval_step`` more
before each next one, at most ``interval_max``. The same numbers govern
turbogroup's retries, which resend a batch (or reopen a channel) rather than
one message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from turbogroup.celery_guards import setting

logger = logging.getLogger("turbogroup.publish")

T = TypeVar("T")


def merged_policy(app: Any, options: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The group's ``retry``/``retry_policy`` over the app's defaults, as
    Celery's ``send_task_message`` merges them."""
    retry = options.get("retry")
    conf = app.conf
    return (
        setting(conf, "task_publish_retry") if retry is None else bool(retry),
        {**setting(conf, "task_publish_retry_policy"), **(options.get("retry_policy") or {})},
    )


def interval(retries: int, policy: dict[str, Any]) -> float:
    start = float(policy.get("interval_start", 0))
    step = float(policy.get("interval_step", 0.2))
    return min(start + retries * step, float(policy.get("interval_max", 1)))


def may_retry(retry: bool, retries: int, policy: dict[str, Any]) -> bool:
    max_retries = policy.get("max_retries", 3)
    return bool(retry) and (max_retries is None or retries < max_retries)


def retry_errors(errors: tuple[type[BaseException], ...], policy: dict[str, Any]) -> tuple:
    return (*errors, *tuple(policy.get("retry_errors") or ()))


def retrying(
    fun: Callable[[], T],
    errors: tuple[type[BaseException], ...],
    retry: bool,
    policy: dict[str, Any],
    what: str,
    on_error: Callable[[BaseException], None] | None = None,
) -> T:
    """``fun()``, called again per the policy while it raises ``errors``;
    ``on_error`` runs before each wait (to drop a dead connection)."""
    catch = retry_errors(errors, policy)
    retries = 0
    while True:
        try:
            return fun()
        except catch as exc:
            if not may_retry(retry, retries, policy):
                raise
            wait = interval(retries, policy)
            logger.warning("%s failed (%r); retrying in %ss", what, exc, wait)
            if on_error is not None:
                on_error(exc)
            time.sleep(wait)
            retries += 1


__all__ = ["interval", "may_retry", "merged_policy", "retry_errors", "retrying"]
