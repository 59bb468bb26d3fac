"""What one `edgex` command owns while it runs: a private temp dir, and SIGTERM handled like Ctrl-C.

Libraries edgex calls leave files in the temp dir (the TFLite converter's SavedModel copy,
AutoGraph's generated modules). Inside `command_session()` every `tempfile` user writes under one
private folder, removed when the command ends, however it ends. SIGTERM raises `Terminated`, a
`KeyboardInterrupt`, so the same cleanup runs as for Ctrl-C and the CLI exits 143.

Example:
    >>> with command_session() as tmp:
    ...     tempfile.gettempdir() == str(tmp)
    True
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; unwinds like Ctrl-C."""


_received: list[int] = []     # signals seen in this session; native code may hide the exception they raise


def _on_signal(signum, frame):
    _received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def interrupted_by() -> int | None:
    """The first SIGINT or SIGTERM received in the current session, or None.

    TensorFlow turns a KeyboardInterrupt raised inside its native code into another exception
    (a TypeError, say); the CLI asks this to report such an error as the interruption it was.
    """
    return _received[0] if _received else None


def raise_if_interrupted(cause: BaseException | None = None) -> None:
    """Inside `signals_raise`: raise the exception of a signal already received, if any (else do nothing).

    TensorFlow's converter catches `Exception` around steps that call back into Python (saving the
    SavedModel it converts from), and a KeyboardInterrupt raised in native code comes back as another
    exception: a signal can be lost and the command go on to write its output and exit 0. Called after
    such code, and before output is committed, this raises it again. Outside `signals_raise` (a library
    call, another thread) it does nothing.

    Example:
        >>> try:
        ...     with signals_raise():
        ...         _received.append(signal.SIGTERM)  # as if the handler ran and its exception was swallowed
        ...         raise_if_interrupted()
        ... except Terminated:                        # a KeyboardInterrupt, which doctest would not catch
        ...     print("raised again")
        raised again
        >>> raise_if_interrupted()                    # outside: nothing
    """
    if _received and signal.getsignal(signal.SIGTERM) is _on_signal:
        raise (Terminated() if _received[0] == signal.SIGTERM else KeyboardInterrupt()) from cause


@contextlib.contextmanager
def signals_raise():
    """SIGINT and SIGTERM raise KeyboardInterrupt (SIGTERM: `Terminated`) and are recorded (`interrupted_by`)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield                              # signal handlers can only be set from the main thread
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_deferred():
    """A SIGINT or SIGTERM arriving inside the block is held until it ends, then handled as it would have been.

    For a few lines that must not be cut halfway: starting a child process and recording it (a Ctrl-C while
    `subprocess.Popen` returns would leave a child nobody kills). Outside the main thread it does nothing.

    Example:
        >>> def handler(signum, frame):
        ...     raise RuntimeError(f"signal {signum}")
        >>> saved = signal.signal(signal.SIGTERM, handler)
        >>> with signals_deferred():
        ...     os.kill(os.getpid(), signal.SIGTERM)
        ...     held = "still running"
        Traceback (most recent call last):
        ...
        RuntimeError: signal 15
        >>> held, signal.signal(signal.SIGTERM, saved) is handler
        ('still running', True)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: got.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if got:
            handler = previous[got[0]]
            if callable(handler):
                handler(got[0], None)               # raises, as it would have (KeyboardInterrupt, Terminated)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), got[0])


@contextlib.contextmanager
def _private_tempdir():
    parent = tempfile.gettempdir()
    tmp = tempfile.mkdtemp(prefix="edgex-run-", dir=parent)
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = tmp, tmp
    try:
        yield Path(tmp)
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def command_session():
    """Run a command with SIGTERM raising `Terminated` (SIGINT: KeyboardInterrupt), temp files in a private folder.

    Yields:
        The private temp folder (removed on exit).
    """
    with signals_raise(), _private_tempdir() as tmp:
        yield tmp
