"""Group commit: the single writer thread, so that operations arriving together share one fsync."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from typing import Any

from slotalloc.service.durable import DurableAllocator
from slotalloc.service.ops import Op

__all__ = ["GroupCommitter"]

_STOP = object()


class GroupCommitter:
    """The single writer thread: operations that arrive together share one commit.

    Callers :meth:`submit` operations from any thread and wait on the returned
    future, which is resolved only after the operation's commit (or with the
    error that refused it). The thread takes the first operation waiting, then
    every other one queued, waiting up to ``window`` seconds for more when the
    previous batch was not a lone operation (so an idle service adds no delay),
    and hands the batch to :meth:`DurableAllocator.execute`: one transaction,
    one fsync of the WAL and one of the head file for the whole batch.

    Parameters
    ----------
    allocator
        The durable allocator (its lock still serialises everything else).
    window
        The longest wait for more operations, in seconds.
    max_batch
        The most operations in one commit.
    """

    def __init__(
        self, allocator: DurableAllocator, *, window: float = 0.002, max_batch: int = 256
    ) -> None:
        self.allocator = allocator
        self.window = window
        self.max_batch = max_batch
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        #: Batches committed and operations in them (for tests and benchmarks).
        self.batches = 0
        self.operations = 0

    def submit(self, op: Op) -> concurrent.futures.Future[Any]:
        """Queue one operation; the future gives its outcome after its commit.

        Raises
        ------
        RuntimeError
            The committer is closed.
        """
        if self._closed:
            raise RuntimeError("the group committer is closed")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._q.put((op, fut, None))
        return fut

    def submit_async(self, op: Op) -> asyncio.Future[Any]:
        """Queue one operation from a running event loop; await the outcome after its commit.

        The outcomes of one batch reach each loop in a single cross-thread call
        (one wake-up per batch rather than one per operation).

        Raises
        ------
        RuntimeError
            The committer is closed, or no event loop is running.
        """
        if self._closed:
            raise RuntimeError("the group committer is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._q.put((op, fut, loop))
        return fut

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued operations and stop the thread."""
        if not self._closed:
            self._closed = True
            self._q.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        q = self._q
        lone = True
        while True:
            item = q.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            deadline = None
            while len(batch) < self.max_batch:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    if lone or self.window <= 0:
                        break
                    if deadline is None:
                        deadline = time.monotonic() + self.window
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = q.get(timeout=left)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            lone = len(batch) == 1
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Op, Any, asyncio.AbstractEventLoop | None]]) -> None:
        # A concurrent future cancelled before it ran is skipped (its op never happens).
        live = [
            (op, fut, loop)
            for op, fut, loop in batch
            if loop is not None or fut.set_running_or_notify_cancel()
        ]
        if not live:
            return
        failure: BaseException | None = None
        try:
            outs: list[Any] = list(self.allocator.execute([op for op, _f, _l in live]))
        except BaseException as e:  # the whole batch failed: nothing of it happened
            failure = e
            outs = [e] * len(live)
        else:
            self.batches += 1
            self.operations += len(live)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
        for (_op, fut, loop), out in zip(live, outs, strict=True):
            if loop is None:
                if isinstance(out, BaseException):
                    fut.set_exception(out)
                else:
                    fut.set_result(out)
            else:
                by_loop.setdefault(loop, []).append((fut, out))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits
                loop.call_soon_threadsafe(_resolve_all, items)
        if failure is not None and not isinstance(failure, Exception):
            raise failure


def _resolve_all(items: list[tuple[asyncio.Future[Any], Any]]) -> None:
    """In the event loop: give each awaiting handler its outcome (one call per batch)."""
    for fut, out in items:
        if fut.cancelled():
            continue
        if isinstance(out, BaseException):
            fut.set_exception(out)
        else:
            fut.set_result(out)
