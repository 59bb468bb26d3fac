"""What the user sees while edgex works: progress bars and status lines on stderr.

stdout stays clean for `--json`. TensorFlow and LiteRT print native log lines
(absl warnings, converter and delegate chatter) straight to file descriptor 2;
`quiet_native_stderr()` hides them unless `--debug`, while progress bars keep
writing to a saved copy of the real stderr.

Example:
    >>> with progress("calibrating", total=100) as advance:
    ...     for _ in range(100):
    ...         advance()
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

PLAIN_INTERVAL_S = 10.0
"""Off a terminal, the most seconds between two progress lines of a long step."""

_settings = {"enabled": True, "debug": False}
_real_stderr = None


def set_enabled(flag: bool) -> None:
    """Turn progress bars and status lines on or off for this process (`scoped` for one block)."""
    _settings["enabled"] = flag


def set_debug(flag: bool) -> None:
    """In debug mode native log lines are shown, not hidden (`scoped` for one block)."""
    _settings["debug"] = flag


@contextlib.contextmanager
def scoped(*, enabled: bool | None = None, debug: bool | None = None):
    """Change the settings for the block only; the previous ones are restored however it ends.

    Args:
        enabled: show progress bars and status lines; None keeps the current setting.
        debug: show native log lines; None keeps the current setting.

    Example:
        >>> with scoped(enabled=False):
        ...     _settings["enabled"]
        False
    """
    saved = dict(_settings)
    if enabled is not None:
        _settings["enabled"] = enabled
    if debug is not None:
        _settings["debug"] = debug
    try:
        yield
    finally:
        _settings.clear()
        _settings.update(saved)


def _stderr():
    """A file on the real stderr that survives `quiet_native_stderr()`."""
    global _real_stderr
    if _real_stderr is None:
        try:
            _real_stderr = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (OSError, ValueError, AttributeError):   # no real fd (e.g. captured by a test runner)
            return sys.stderr
    return _real_stderr


def _active() -> bool:
    return _settings["enabled"] and not os.environ.get("EDGEX_NO_PROGRESS")


def _clock_text(seconds: float) -> str:
    """`1:05` for 65 s, `1:01:05` past an hour."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _PlainProgress:
    """Progress as plain lines for logs (stderr not a terminal): `description: n/total, elapsed, ETA`.

    A line is printed at most every `interval` seconds, and at the end. `tick()` is called by
    `advance` and by a heartbeat thread, so a long step (one 60 s epoch) still prints while it runs.
    """

    def __init__(self, description: str, total: int | None, stream, *, interval: float, clock):
        self.description, self.total, self.stream = description, total, stream
        self.interval, self.clock = interval, clock
        self.done, self.shown = 0, None        # shown: the count of the last line printed
        self.start = self.last = clock()
        self.lock = threading.Lock()

    def line(self, now: float) -> str:
        elapsed = now - self.start
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        text = f"{self.description}: {count}, elapsed {_clock_text(elapsed)}"
        if self.total and 0 < self.done < self.total:
            text += f", ETA {_clock_text(elapsed / self.done * (self.total - self.done))}"
        return text

    def tick(self, *, force: bool = False) -> None:
        """Print a line if one is due; `force` (the end) prints unless the last line said the same count."""
        with self.lock:
            now = self.clock()
            if (force and self.done != self.shown) or now - self.last >= self.interval:
                self.last, self.shown = now, self.done
                print(self.line(now), file=self.stream, flush=True)

    def advance(self, n: int = 1) -> None:
        with self.lock:
            self.done += n
        self.tick()


@contextlib.contextmanager
def _plain(description: str, total: int | None, stream, interval: float, clock):
    bar = _PlainProgress(description, total, stream, interval=interval, clock=clock)
    stop = threading.Event()

    def heartbeat():      # wakes when the next line is due (never busy-waits, even on a fake clock)
        while not stop.wait(min(max(bar.last + interval - clock(), interval / 20), interval)):
            bar.tick()

    thread = threading.Thread(target=heartbeat, name="edgex-progress", daemon=True)
    thread.start()
    try:
        yield bar.advance
    finally:
        stop.set()
        thread.join()
        bar.tick(force=True)


@contextlib.contextmanager
def progress(description: str, total: int | None, *, interval: float = PLAIN_INTERVAL_S, clock=time.monotonic):
    """Show progress while the block runs; yields `advance(n=1)`.

    On a terminal: a rich bar. Otherwise (a log, CI): a plain line `description: n/total, elapsed m:ss,
    ETA m:ss` at most every `interval` seconds, even while no step ends, and one at the end. Nothing
    when progress is off (`set_enabled(False)`, `scoped`, or EDGEX_NO_PROGRESS set).

    Args:
        description: what is being done ("fine-tuning (qat)").
        total: the number of steps, or None when unknown.
        interval: seconds between plain lines (default 10).
        clock: the time source of plain lines (tests pass a fake one).
    """
    stream = _stderr()
    if not _active():
        yield lambda n=1: None
        return
    if not stream.isatty():
        with _plain(description, total, stream, interval, clock) as advance:
            yield advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def status(message: str) -> None:
    """Print one line saying what is happening, on stderr."""
    if _active():
        print(f"• {message}", file=_stderr(), flush=True)


@contextlib.contextmanager
def quiet_native_stderr():
    """Hide what native code writes to fd 2 during the block (kept with --debug)."""
    if _settings["debug"]:
        yield
        return
    _stderr()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
