"""Stopping on request without losing work: SIGTERM (a cluster's preemption, ``kill``) or
a first Ctrl-C lets the current step finish, then training writes a checkpoint and ends;
a second Ctrl-C interrupts at once."""

from __future__ import annotations

import signal
import threading


class StopRequests:
    """Within ``with``, SIGTERM and SIGINT set :attr:`requested` (the signal's name)
    instead of killing the process. Only the main thread can install handlers; elsewhere
    (and for signals the platform lacks) the defaults stay."""

    def __init__(self):
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, number: int, frame) -> None:
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.requested = signal.Signals(number).name

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGINT"):
                number = getattr(signal, name, None)
                if number is not None:
                    self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
