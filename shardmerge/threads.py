"""Work on a thread of its own whose errors surface in the caller's thread (the node-local fetch, the merge
beside the shard tasks)."""

from __future__ import annotations

import sys
import threading
import traceback


class Background:
    """`fn()` on a thread of its own; `result()` joins it and returns its value or raises its exception."""

    def __init__(self, fn, name: str):
        self._value: object = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as exc:  # noqa: BLE001 - raised by result(), in the caller's thread
                self._error = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def raise_error(self) -> None:
        """Raise what `fn` raised, if it has (without waiting for it)."""
        if self._error is not None:
            raise self._error

    def stopped_within(self, seconds: float) -> bool:
        """Wait at most `seconds` for `fn` to return (or raise); whether it has."""
        self._thread.join(seconds)
        return not self._thread.is_alive()

    def stack(self) -> str:
        """Where the thread is now, for a log line when it does not stop."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        return "".join(traceback.format_stack(frame)) if frame is not None else "(not running)"

    def result(self, raise_error: bool = True):
        self._thread.join()
        if raise_error:
            self.raise_error()
        return self._value
