"""sentry-sdk with its Celery integration, for a test's fresh interpreter
(the integration patches Celery and kombu for the whole process). Nothing
here imports turbogroup: a test may initialise Sentry before it."""

from __future__ import annotations

from typing import Any


def init_sentry(kept: list[dict[str, Any]] | None = None) -> Any:
    """``sentry_sdk``, initialised with ``CeleryIntegration`` and every trace
    sampled. Nothing leaves the machine: transaction events go into
    ``kept`` when given, else nowhere."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.transport import Transport

    class Local(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            if kept is None:
                return
            event = envelope.get_transaction_event()
            if event is not None:
                kept.append(event)

    sentry_sdk.init(
        dsn="http://key@127.0.0.1:9/1",
        transport=Local,
        traces_sample_rate=1.0,
        integrations=[CeleryIntegration()],
        default_integrations=False,
    )
    return sentry_sdk
