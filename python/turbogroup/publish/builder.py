"""A dispatch's messages as Celery's publish would make them, resolved once
per kind: a child's options are merged as ``Signature.apply_async`` merges
them and resolved as Celery resolves them (``publish/resolve.py``); a child
whose task and options are those of an earlier one (``AlikeKeys``) is an
``AlikeChild`` of that child's message, its template. The fast paths of
Redis (``publish/redis.py``) and of RabbitMQ with publish signals
(``publish/amqp_signalled.py``) build their messages with it."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

from celery import Signature

from turbogroup.celery_guards import argument_check
from turbogroup.publish.alike import AlikeChild, AlikeKeys, celery_publishing_task
from turbogroup.publish.redis_runs import Message
from turbogroup.publish.resolve import Clock, MessageResolver, child_clock
from turbogroup.publish.signalled import Built, SendOptions


class MessageBuilder:
    """Builds one dispatch's messages (see the module docstring)."""

    def __init__(
        self, resolver: MessageResolver, keys: AlikeKeys, producer: Any, enabled: bool
    ) -> None:
        self.resolver = resolver
        self.keys = keys
        self.producer = producer
        # whether this app's messages may be built here at all
        # (``alike.fast_path_allowed``)
        self.enabled = enabled
        # (queue, template) of the last child built, when its message is
        # the same as any other child's with the same task and options but
        # for ids and arguments; and what its children read the clock for.
        self.last_alike: tuple[str, dict[str, Any]] | None = None
        self.last_clock: Clock | None = None
        # memo key -> (queue, message without ids and arguments, the
        # options, what its children read the clock for)
        self._memo: dict[tuple[Any, ...], tuple[str, dict[str, Any], dict[str, Any], Any]] = {}
        # id(template) -> what send_task_message was given for its messages,
        # and its task and options as Signature.apply_async passed them
        self._learned: dict[int, Learned] = {}

    def build(
        self, sig: Signature, chord: Any, args: Any, kwargs: Any, options: dict
    ) -> tuple[str, str, Message] | None:
        """``(task id, queue, message)`` of a child, or None when Celery
        must publish it."""
        self.last_alike = None
        task = celery_publishing_task(self.resolver.app, sig) if self.enabled else None
        if task is None:
            return None
        # Signature.apply_async: route_name is a parameter of its own, not
        # passed on (a signature's own route_name option is), and None
        # options are dismissed; then merged.
        call = {"producer": self.producer, "add_to_parent": False, "chord": chord, **options}
        opts = {k: v for k, v in call.items() if v is not None and k != "route_name"}
        args, kwargs, opts = sig._merge(args or (), kwargs or {}, opts)
        key = self.keys.key(task, opts)
        if key is None:
            return self.resolver.resolve(task, args, kwargs, dict(opts))
        memo = self._memo.get(key)
        if memo is None:
            built = self.resolver.resolve(task, args, kwargs, dict(opts))
            if built is not None:
                reads = Clock.of(task, opts)
                clock = reads if reads.reads_the_clock() else None
                # the key's objects are kept alive with it: their ids stay theirs
                self._memo[key] = (built[1], built[2], opts, clock)
                send = cast(SendOptions, self.resolver.last_send)
                self._learned[id(built[2])] = Learned(send, task, opts)
                self.last_alike = (built[1], built[2])
                self.last_clock = clock
            return built
        # The same task and options as an earlier child but for its ids and
        # arguments: what Celery resolves from them is resolved already.
        check_arguments = argument_check(task)
        if check_arguments is not None:
            check_arguments(*(args or ()), **(kwargs or {}))
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
            return None  # Celery raises TypeError: let it
        qname, template, _, clock = memo
        own_clock = None
        if clock is not None:
            own_clock = child_clock(self.resolver.clock, clock, template)
            if own_clock is None:
                return None
        self.last_alike = (qname, template)
        self.last_clock = clock
        task_id = opts["task_id"]
        fields = (task_id, opts.get("group_index"), args, kwargs, opts.get("chain"), own_clock)
        return task_id, qname, AlikeChild(*fields, template)

    def built(self, task_id: str, message: Message) -> Built:
        """``message`` with what ``send_task_message`` was given for it, for
        the publish signals (``publish/signalled.py``)."""
        if isinstance(message, AlikeChild):
            send = self._learned[id(message.template)].send
            return Built(message.template, task_id, *message[1:4], send, message)
        send = cast(SendOptions, self.resolver.last_send)
        fields = message["group_index"], message["args"], message["kwargs"]
        return Built(message, task_id, *fields, send)

    def own_child(self, task_id: str, message: Message) -> AlikeChild | None:
        """A message ``build`` just made, as an alike child of itself when
        it is its kind's template (``last_alike``); None when it is alike
        no other child."""
        last = self.last_alike
        if last is None or message is not last[1]:
            return None
        template = last[1]
        fields = template["group_index"], template["args"], template["kwargs"]
        return AlikeChild(task_id, *fields, template["chain"], None, template)

    def call_of(self, child: AlikeChild) -> tuple[Any, dict[str, Any]]:
        """The task and the options ``Signature.apply_async`` passes to the
        task's ``apply_async`` for an alike child: its template's but for
        the child's id and group index (what its kind leaves to differ)."""
        learned = self._learned[id(child.template)]
        opts = dict(learned.opts)
        opts["task_id"] = child.task_id
        if "group_index" in opts:
            opts["group_index"] = child.group_index
        return learned.task, opts


class Learned(NamedTuple):
    """What a template's first child was published with."""

    send: SendOptions
    task: Any
    opts: dict[str, Any]


__all__ = ["MessageBuilder"]
