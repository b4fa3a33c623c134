"""Prepare the next batch in a thread while the current one trains.

While an accelerator runs batch ``i``, the host is free: slicing, padding, image decoding,
sharding and pinning of batch ``i + 1`` happen in a thread meanwhile. Batch sources must not
draw from torch's global random generator (they use their own, seeded by position), so the
order in which the two threads run changes nothing. When the CPU trains, its cores are busy
with the step itself: a second thread only competes with torch's own (measured on 2 cores:
7% fewer tokens/s for the default language model), so ``depth=0`` iterates in place.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


@contextmanager
def prefetch(items: Iterable[Any], depth: int = 2) -> Iterator[Iterator[Any]]:
    """Iterate ``items`` up to ``depth`` ahead in a worker thread (``depth`` 0: no thread);
    leaving the block stops it."""
    if depth == 0:
        yield iter(items)
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failure(error))

    def consume() -> Iterator[Any]:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    worker = threading.Thread(target=work, name="seqgen-prefetch", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        stop.set()
        worker.join()
