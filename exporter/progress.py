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


@contextlib.contextmanager
def progress(description: str, total: int | None):
    """Show a progress bar while the block runs; yields `advance(n=1)`."""
    stream = _stderr()
    if not _active() or not stream.isatty():
        yield lambda n=1: None
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
