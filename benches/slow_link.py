"""Dispatch over a slow link: a loopback TCP proxy in front of Redis that
delays each direction by ``--delay-ms``, so every round trip costs twice
that. turbogroup's 100k dispatch through it, against the same proxy with no
delay (so the proxy's own cost cancels), with its default window of
pipelined batches and with a window of 1 (one round trip per batch); and
Celery's cost per task through the same proxy (a smaller group: it pays a
round trip per task).

    python -m benches.slow_link --n 100000 --delay-ms 5

Loopback only; the proxy holds at most ``MAX_QUEUED`` chunks per direction.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
import uuid
from typing import Any

import redis
from celery import Celery
from celery.canvas import group as celery_group

from turbogroup import group

MAX_QUEUED = 1024  # chunks of up to 64 KiB in flight per direction


class DelayProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target>, each chunk written
    ``delay`` seconds after it was read, in order."""

    def __init__(self, target: int, delay: float) -> None:
        self.target, self.delay = target, delay
        self.loop = asyncio.new_event_loop()
        self.port = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=MAX_QUEUED)

        async def pump() -> None:
            while data := await reader.read(65536):
                await queue.put((loop.time() + self.delay, data))
            await queue.put((loop.time() + self.delay, b""))

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        try:
            await asyncio.gather(pump(), deliver())
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()

    def close(self) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(10)


def make_app(port: int, window: int | None) -> tuple[Celery, Any]:
    app = Celery("turbogroup-slow-link", set_as_current=False)
    app.conf.update(broker_url=f"redis://127.0.0.1:{port}/11", result_backend=None)
    if window is not None:
        app.conf.turbogroup_confirm_window = window

    @app.task(name="slow_link.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    return app, add


def dispatch(port: int, n: int, impl: str, window: int | None = None) -> float:
    """Seconds for one ``apply_async`` of n tasks through ``port``."""
    app, add = make_app(port, window)
    queue = f"turbogroup-slow-{uuid.uuid4().hex[:8]}"
    make = group if impl == "turbogroup" else celery_group
    # A first dispatch connects the app's pool before the clock starts.
    make([add.s(0, 0)]).apply_async(queue=queue)
    canvas = make(add.s(i, i) for i in range(n))
    started = time.perf_counter()
    canvas.apply_async(queue=queue)
    elapsed = time.perf_counter() - started
    client = redis.Redis(port=6379, db=11)
    try:
        queued = client.llen(queue) - 1
        if queued != n:
            raise AssertionError(f"{impl}: {queued} of {n} queued")
    finally:
        client.delete(queue)
        client.close()
        app.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--celery-n", type=int, default=200)
    parser.add_argument("--delay-ms", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    direct = DelayProxy(6379, 0.0)
    slow = DelayProxy(6379, args.delay_ms / 1000)
    try:

        def best(port: int, n: int, impl: str, window: int | None = None) -> float:
            return min(dispatch(port, n, impl, window) for _ in range(args.rounds))

        plain = best(direct.port, args.n, "turbogroup")
        delayed = best(slow.port, args.n, "turbogroup")
        one = best(slow.port, args.n, "turbogroup", window=1)
        celery_each = best(slow.port, args.celery_n, "celery") / args.celery_n
    finally:
        direct.close()
        slow.close()
    print(f"N={args.n:,}, {args.delay_ms:g} ms each way, best of {args.rounds}")
    print(f"turbogroup, proxy without delay:      {plain:7.2f} s")
    print(f"turbogroup, delayed, default window:  {delayed:7.2f} s  ({delayed / plain:.2f}x)")
    print(f"turbogroup, delayed, window of 1:     {one:7.2f} s  ({one / plain:.2f}x)")
    print(
        f"celery, delayed: {celery_each * 1e3:.2f} ms per task "
        f"(N={args.celery_n}; {celery_each * args.n / 60:.1f} min for {args.n:,})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
