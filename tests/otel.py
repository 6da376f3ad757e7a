"""OpenTelemetry's Celery instrumentation, on for one test only (its
publish receivers would turn batching off for the rest), spans exported
to memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def instrumented(name: str) -> Iterator[tuple[Any, Any]]:
    """``(tracer, exporter)`` while ``CeleryInstrumentor`` is on."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider.get_tracer(name), exporter
    finally:
        instrumentor.uninstrument()
