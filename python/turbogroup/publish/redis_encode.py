"""What the Rust encoder makes of a Redis dispatch step's messages
(``publish/redis_runs.py``): the check when a step is sealed, and the
LPUSH commands (or the envelopes) when it is sent. ``limits`` are the
encoder's repr limits for the app (``alike.repr_limits``)."""

from __future__ import annotations

from typing import Any, cast

from turbogroup import _core
from turbogroup.publish.alike import AlikeChild, by_template
from turbogroup.publish.redis_runs import Message, Run, alike_headers, one_template


def lpush_commands(runs: list[Run], prefix: str, limits: dict[str, Any]) -> list[bytes]:
    """A step's LPUSHes, one per run, as Redis protocol bytes, each key
    after ``prefix``; the messages are encoded again (they were checked
    when sealed)."""
    commands = []
    for run in runs:
        key = prefix + run.key
        if run.template is not None:
            items, headers = run.items(), run.headers
            command = _core.lpush_alike_command(key, run.template, items, **limits, headers=headers)
            commands.append(command)
            continue
        commands.append(_core.lpush_command(key, envelopes(run, limits)))
    return commands


def envelopes(run: Run, limits: dict[str, Any]) -> list[bytes]:
    """A run's envelopes, encoded again (they were checked when sealed,
    so one that no longer encodes is an error)."""
    if run.template is not None:
        values = _core.encode_alike_messages(
            run.template, run.items(), **limits, headers=run.headers
        )
    else:
        messages = run.messages
        values = list(messages)  # envelopes kept from the check stay
        dicts = [i for i, m in enumerate(messages) if type(m) is not bytes]
        encoded = _core.encode_task_messages([messages[i] for i in dicts], **limits)
        for i, value in zip(dicts, encoded):
            values[i] = value
    for value in values:
        if isinstance(value, _core.Unsupported):
            raise RuntimeError(f"message no longer encodable: {value.reason}")
    return values


def checked(messages: list[Message], limits: dict[str, Any], one_by_one: bool) -> list[Any] | None:
    """None when every message encodes; else None, or ``Unsupported``,
    per message (or an envelope, below): alike messages are encoded
    together, per template, and no bytes are kept. ``one_by_one``: the
    messages were published one by one (between the publish signals, or
    inside a tracer's wrappers), so an alike one may have headers of its
    own, and a whole one keeps its envelope instead of None (it holds a
    held signal's arguments until sent anyway), so that it is encoded
    once, not twice."""
    template = one_template(messages)
    if template is not None:
        alike = cast(list[AlikeChild], messages)
        verdicts = _alike_verdicts(template, alike, limits, one_by_one)
        return None if verdicts.count(None) == len(verdicts) else verdicts
    out: list[Any] = [None] * len(messages)
    templates = [m.template if isinstance(m, AlikeChild) else None for m in messages]
    whole = [i for i, template in enumerate(templates) if template is None]
    if whole:
        wholes = [cast(dict[str, Any], messages[i]) for i in whole]
        for i, data in zip(whole, _core.encode_task_messages(wholes, **limits)):
            out[i] = data if one_by_one or isinstance(data, _core.Unsupported) else None
    for template, positions in by_template(templates):
        items = [cast(AlikeChild, messages[i]) for i in positions]
        verdicts = _alike_verdicts(template, items, limits, one_by_one)
        if verdicts.count(None) == len(verdicts):
            continue  # all encodable: out is all None there
        for i, verdict in zip(positions, verdicts):
            out[i] = verdict
    return out


def _alike_verdicts(
    template: dict[str, Any], items: list[AlikeChild], limits: dict[str, Any], one_by_one: bool
) -> list[Any]:
    headers = alike_headers(items) if one_by_one else None
    return _core.encode_alike_messages(template, items, check=True, **limits, headers=headers)


__all__ = ["checked", "envelopes", "lpush_commands"]
