"""The per-network lock: a reentrant lock granted in arrival order (``FairRLock``).

It holds no knowledge of networks; ``network.py`` creates one per Network and holds it around
every native call on the parameters. Deliberately not a general-purpose lock: no timeouts, no
``locked()``, only what the network needs."""

from __future__ import annotations

import collections
import threading


class _Waiter:
    """A thread queued for a FairRLock: its gate is held locked until the lock is handed to it."""

    __slots__ = ("gate", "handed_over", "thread")

    def __init__(self, thread: int) -> None:
        self.thread = thread
        self.gate = threading.Lock()
        self.gate.acquire()
        self.handed_over = False


class FairRLock:
    """A reentrant lock granted in arrival order.

    ``threading.RLock`` lets a releasing thread take the lock straight back, before a woken
    waiter runs; a fit that releases the network's lock between epochs then starves a predict
    from another thread for dozens of epochs. Here a release hands the lock to the longest
    waiting thread, so a waiter gets it at the next release.

    Waiting releases the GIL and, in the main thread, can be interrupted by Ctrl-C.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # guards the fields below; held only briefly
        self._owner: int | None = None
        self._count = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()  # oldest first

    def acquire(self) -> bool:
        me = threading.get_ident()
        # Built only when the lock is taken: an uncontended acquire (every predict of one row)
        # then costs no new threading.Lock.
        waiter: _Waiter | None = None
        acquired = False
        try:
            with self._mutex:
                if self._owner == me:
                    self._count += 1
                    acquired = True
                    return True
                if self._owner is None and not self._waiters:
                    self._owner, self._count = me, 1
                    acquired = True
                    return True
                waiter = _Waiter(me)
                self._waiters.append(waiter)
            waiter.gate.acquire()  # until a release hands the lock to this thread
        except BaseException:
            # Ctrl-C (or another asynchronous exception) before the caller could hold the
            # lock: leave the queue, or give back what this call took, so that the lock is
            # never left held by, or handed to, a thread that is not going to release it.
            with self._mutex:
                if waiter is not None and waiter in self._waiters:
                    self._waiters.remove(waiter)
                    raise
                took_it = acquired or (waiter is not None and waiter.handed_over)
            if took_it:
                self.release()
            raise
        return True

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a network lock held by another thread")
            self._count -= 1
            if self._count:
                return
            if self._waiters:
                waiter = self._waiters.popleft()
                self._owner, self._count = waiter.thread, 1
                waiter.handed_over = True
                waiter.gate.release()
            else:
                self._owner = None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
