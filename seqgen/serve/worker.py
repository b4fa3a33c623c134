"""The one inference thread of a server, its bounded queue and its time limit.

All of a server's PyTorch work, loading included, runs in this one thread: each thread that
runs PyTorch operators gets its own OpenMP team, and on a small CPU two teams spin against
each other (measured on 2 cores: an LSTM step 3.5× slower in both threads once a second
thread had run one). Shutting the thread down ends its team.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("seqgen.serve")

# A job's check of its own clock: true once its time is up (it then stops at the next check).
Expired = Callable[[], bool]


class Busy(Exception):
    """The inference queue is full."""


class TimedOut(Exception):
    """A request ran past the server's time limit (or waited past it before it started)."""


class Worker:
    """One inference thread; at most ``queue`` jobs running or waiting; each job must end
    within ``time_limit`` seconds of being accepted."""

    def __init__(self, queue: int, time_limit: float = 60.0):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqgen-infer")
        self.limit = queue
        self.time_limit = time_limit
        self.jobs = 0  # running or waiting
        self.lock = threading.Lock()

    def full(self) -> bool:
        with self.lock:
            return self.jobs >= self.limit

    def _accept(self) -> Expired:
        with self.lock:
            if self.jobs >= self.limit:
                raise Busy
            self.jobs += 1
        deadline = time.monotonic() + self.time_limit
        return lambda: time.monotonic() > deadline

    def _done(self, _: Any = None) -> None:
        with self.lock:
            self.jobs -= 1

    def _submit(self, fn: Callable[[Expired], Any], expired: Expired) -> Future:
        def job():
            if expired():  # it waited its whole time in the queue: not started
                raise TimedOut
            return fn(expired)

        future = self.pool.submit(job)
        future.add_done_callback(self._done)  # counted until it really ends
        return future

    async def run(self, fn: Callable[[Expired], Any]) -> Any:
        """``fn(expired)`` in the worker; its answer, or TimedOut when the time limit passes
        first (the job is told through ``expired`` and stops at its next check)."""
        expired = self._accept()
        future = asyncio.wrap_future(self._submit(fn, expired))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.time_limit)
        except asyncio.TimeoutError:
            raise TimedOut from None

    def stream(self, produce: Callable[[Callable[[Any], bool], Expired], None]):
        """Run ``produce(emit, expired)`` in the worker; yield what it emits as it comes.
        ``emit`` returns False once the client has gone, so the producer can stop early."""
        expired = self._accept()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        gone = threading.Event()
        end = object()

        def emit(item: Any) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, item)
            return not gone.is_set()

        def job(expired: Expired) -> None:
            try:
                produce(emit, expired)
            except Exception as exc:  # noqa: BLE001 (told to the client, logged here)
                if not isinstance(exc, TimedOut):
                    log.exception("generation failed")
                emit(exc)
            finally:
                emit(end)

        def refused(future: Future) -> None:  # it timed out before it could start
            if not future.cancelled() and future.exception() is not None:
                loop.call_soon_threadsafe(queue.put_nowait, future.exception())
                loop.call_soon_threadsafe(queue.put_nowait, end)

        future = self._submit(job, expired)
        future.add_done_callback(refused)

        async def items():
            try:
                while (item := await queue.get()) is not end:
                    yield item
            finally:
                gone.set()
                with contextlib.suppress(TimedOut, asyncio.CancelledError):
                    await asyncio.wrap_future(future)

        return items()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
