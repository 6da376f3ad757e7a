"""A tracer's wrappers of Celery's publishing methods, run around the
encoder's messages.

sentry-sdk's Celery integration replaces ``Task.apply_async`` and
``Celery.send_task`` with wrappers that start a span and add ``sentry-trace``
and ``baggage`` to the ``headers`` option, and kombu's ``Producer.publish``
with one that starts a span around the publish. Each is a function closing
over the method it replaced (``celery_guards.Wrapper``). The three alone
take ~190 µs a message here; Celery's own publishing under them about
three times that.

Here each child's wrappers run as Celery runs them, in the child's order,
each given exactly the arguments Celery's code would give it; only the
Celery code between them is the fast path's:

- ``Task.apply_async``'s wrapper is called as ``Signature.apply_async``
  calls the task's ``apply_async``; where it calls Celery's method, it calls
  ``_apply_async`` here, which does what Celery's does before
  ``app.send_task`` (the typing check, the shadow name, the task's options);
- ``Celery.send_task``'s wrapper is then called with what Celery's
  ``apply_async`` passes; where it calls Celery's, ``_send_task`` takes the
  ``headers`` the wrappers left: the child's message is its kind's template
  with those headers appended, as ``send_task_message`` appends them;
- ``Producer.publish``'s wrapper is then called with what
  ``send_task_message`` passes to ``producer.publish`` (the body, the
  headers, the properties), and where it calls kombu's, ``_publish`` hands
  the child (an ``AlikeChild`` with the headers of its own) to the
  transport's ``Queue``: on Redis the encoder's, on RabbitMQ kombu's
  publish of exactly what the wrapper passed, into the recording producer.

A wrapper that calls on with anything changed but the ``headers`` option,
or with headers the template cannot take (the template has headers of its
own), or whose message the encoder cannot write, gets Celery's or kombu's
own method from that point, into the dispatch's recording producer: the
message is Celery's, and every wrapper still ran once. A wrapper that calls
its method twice publishes twice, as with Celery.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import repeat
from operator import is_
from typing import TYPE_CHECKING, Any, NamedTuple

from celery import Celery
from celery.app.task import Task
from kombu import Producer

from turbogroup.celery_guards import PublishingWrappers
from turbogroup.publish.alike import AlikeChild, new_tuple
from turbogroup.publish.resolve import apply_async_preamble
from turbogroup.publish.signalled import Built, CeleryMessage, SignalledMessages

if TYPE_CHECKING:
    from turbogroup.publish.builder import MessageBuilder

# Takes a child's message where the innermost wrapper calls kombu's publish:
# (queue name, message, kombu's publish of it now with exactly what the
# wrapper passed on, into the recording producer).
Queue = Callable[[str, AlikeChild, Callable[[], None]], None]


_MISSING = object()


class Call(NamedTuple):
    """A call a wrapper is expected to pass on: positional arguments and
    keywords, each compared by identity (``headers`` excepted)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def made_by(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether ``(args, kwargs)`` is this call but for ``headers``."""
        if len(args) != len(self.args) or not all(map(is_, args, self.args)):
            return False
        own = self.kwargs
        # (own is this call's alone: it may take the headers passed on)
        if "headers" in kwargs:
            own["headers"] = kwargs["headers"]
        elif own.get("headers") is not None:
            return False
        else:
            own.pop("headers", None)
        return len(kwargs) == len(own) and all(
            map(is_, map(kwargs.get, own, repeat(_MISSING)), own.values())
        )


class Methods(NamedTuple):
    """``Task.apply_async``, ``Celery.send_task`` and ``Producer.publish``."""

    apply_async: Callable[..., Any]
    send_task: Callable[..., Any]
    publish: Callable[..., Any]


class Child(NamedTuple):
    """The child being published: its queue, its alike message, the call
    the next wrapper should pass on."""

    qname: str
    message: AlikeChild
    call: Call


class WrappedPublishing:
    """Runs one dispatch's wrappers around its children's messages (see
    the module docstring)."""

    def __init__(
        self,
        builder: MessageBuilder,
        wrappers: PublishingWrappers,
        limits: dict[str, Any],
        queue: Queue,
    ) -> None:
        self.builder = builder
        self.messages = SignalledMessages(builder.resolver.app, builder.producer, limits)
        # what takes a child's message where the innermost wrapper calls
        # kombu's publish: the transport's (see Queue)
        self.queue = queue
        # Celery's and kombu's own methods, for the calls the fast path leaves
        owns = (Task.apply_async, Celery.send_task, Producer.publish)
        self._own = Methods(*(
            own if wrapper is None else wrapper.original for wrapper, own in zip(wrappers, owns)
        ))  # fmt: skip
        # each wrapper, calling the fast path's step where it called Celery's
        captures = (self._apply_async, self._send_task, self._publish)
        self._wrapper = Methods(*(
            capture if wrapper is None else wrapper.around(capture)
            for wrapper, capture in zip(wrappers, captures)
        ))  # fmt: skip
        # the child whose wrappers are running; None once its call was taken
        self._child: Child | None = None
        self._built: tuple[Built, CeleryMessage, list[tuple[str, Any]]] | None = None

    def publish(self, qname: str, message: AlikeChild) -> None:
        """Publish an alike child as Celery would: its wrappers around it."""
        task, opts = self.builder.call_of(message)
        call = Call((task, message.args, message.kwargs), opts)
        self._child = Child(qname, message, call)
        try:
            self._wrapper.apply_async(*call.args, **call.kwargs)
        finally:
            self._child = self._built = None

    def _taken(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Child | None:
        """The child, when this is the call its wrapper was expected to make
        (once); None: Celery's method must take it."""
        child = self._child
        if child is None or not child.call.made_by(args, kwargs):
            return None
        self._child = None
        return child

    def _apply_async(self, *args: Any, **kwargs: Any) -> Any:
        child = self._taken(args, kwargs)
        if child is None:
            return self._own.apply_async(*args, **kwargs)
        return self._send(child, kwargs)

    def _send(self, child: Child, options: dict[str, Any]) -> Any:
        """``Task.apply_async`` after its wrapper, up to ``app.send_task``."""
        task, args, kwargs = child.call.args
        applied = apply_async_preamble(task, args, kwargs, dict(options))
        call = Call(
            (task._get_app(), task.name, args, kwargs),
            dict(
                task_id=applied.task_id, producer=applied.producer, link=applied.link,
                link_error=applied.link_error, result_cls=task.AsyncResult,
                shadow=applied.shadow, task_type=task, **applied.options,
            ),
        )  # fmt: skip
        self._child = Child(child.qname, child.message, call)
        return self._wrapper.send_task(*call.args, **call.kwargs)

    def _send_task(self, *args: Any, **kwargs: Any) -> Any:
        child = self._taken(args, kwargs)
        if child is None or not self._takes_headers(child, kwargs):
            return self._own.send_task(*args, **kwargs)
        # a copy, as send_task_message's update of its own dict copies them
        headers = dict(kwargs["headers"]) if kwargs.get("headers") else None
        message = new_tuple(AlikeChild, (*child.message[:9], headers))
        built = self.builder.built(message.task_id, message)
        celery_message = self.messages.celery_message(built)
        if celery_message is None:
            return self._own.send_task(*args, **kwargs)
        publish_kwargs = self.messages.publish_kwargs(built, celery_message)
        producer = self.messages.producer
        call = Call((producer, celery_message.body), publish_kwargs)
        self._child = Child(child.qname, message, call)
        self._built = (built, celery_message, list(celery_message.headers.items()))
        self._wrapper.publish(*call.args, **call.kwargs)
        ignore_result = kwargs.get("ignore_result", False)
        result = (kwargs.get("result_cls") or args[0].AsyncResult)(message.task_id)
        result.ignored = ignore_result
        return result

    def _publish(self, *args: Any, **kwargs: Any) -> Any:
        built = self._built
        child = self._taken(args, kwargs)
        producer, *rest = args
        if (
            child is None
            or built is None
            or kwargs.get("headers") is not built[1].headers
            or list(built[1].headers.items()) != built[2]
        ):
            # kombu's publish, into the recording producer, of what it is given
            return producer.publish_by(self._own.publish, *rest, **kwargs)
        self.queue(
            child.qname,
            child.message,
            partial(producer.publish_by, self._own.publish, *rest, **kwargs),
        )
        return None

    def _takes_headers(self, child: Child, kwargs: dict[str, Any]) -> bool:
        """Whether the child's template can take the headers the wrappers
        left (``send_task``'s ``kwargs``) as its own: a dict, or none, where
        the template has no headers option of its own; and nothing else is
        asked of ``send_task`` (a group's children are not added to a
        parent's trail)."""
        headers = kwargs.get("headers")
        return (
            not child.message.template["headers"]
            and (not headers or type(headers) is dict)
            and not kwargs.get("add_to_parent", True)
        )

    def through_kombu(self, message: AlikeChild) -> None:
        """kombu's publish of a queued child's message, into the recording
        producer, with what ``send_task_message`` gives it (as the publish
        wrapper saw it), made again: the encoder's fallback when it finds it
        cannot write the message when the step is sealed (a value kombu's
        JSON takes and it does not; Celery's ``send_task`` again would run
        the wrappers a second time). Made again rather than kept: keeping
        every queued child's publish arguments until the seal would cost
        ~1 KiB a child."""
        built = self.builder.built(message.task_id, message)
        celery_message = self.messages.celery_message(built)
        assert celery_message is not None  # it was made when queued
        kwargs = self.messages.publish_kwargs(built, celery_message)
        self.messages.producer.publish_by(self._own.publish, celery_message.body, **kwargs)


__all__ = ["WrappedPublishing"]
