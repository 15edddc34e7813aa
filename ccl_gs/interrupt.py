"""Ctrl-C in a long stage: keep the work done so far, say so in one line, exit with status 130.

A training loop runs inside :func:`save_on_interrupt`, which defers Ctrl-C
(SIGINT) to the end of the current step, so the checkpoint written on
interrupt holds a whole number of steps (never a half-applied optimizer step
or densification)::

    with save_on_interrupt(save_and_describe) as guard:
        while step < iterations:
            train_step()
            guard.check()  # a Ctrl-C of this step is raised here

``save_and_describe()`` writes the checkpoint and returns the line to show
(:func:`checkpoint_line`); the loop then ends with :class:`Interrupted`
carrying that line. A second Ctrl-C stops at once, mid-step, without saving.
Stages whose work is a series of files written atomically (preprocess) raise
:class:`Interrupted` themselves. Each command line catches
``KeyboardInterrupt`` and returns :func:`report`'s status.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Callable, Iterator

EXIT_INTERRUPTED = 130
"""Exit status of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it)."""

RESUME = "re-run the same command to resume"
NOTHING_SAVED = f"interrupted: files already written are kept; {RESUME}"
"""The line shown when Ctrl-C came outside a training loop (loading, evaluation, export)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after the stage kept its work; ``str(self)`` is the line saying what was kept and how to resume."""


def checkpoint_line(step: int, where: str | Path) -> str:
    """The line of a training loop stopped at ``step`` whose checkpoint was saved in ``where``."""
    return f"interrupted at step {step}: checkpoint saved in {where}; {RESUME}"


class StepGuard:
    """Defers SIGINT to the next :meth:`check` while active (a context manager).

    The handler is installed only in the main thread and only over Python's
    default one (an ignored SIGINT, or a caller's own handler, is left alone);
    otherwise the guard does nothing and Ctrl-C raises where it lands.
    """

    def __init__(self) -> None:
        self.pending = False
        """A Ctrl-C arrived and :meth:`check` has not raised it yet."""
        self.forced = False
        """A second Ctrl-C was raised at once, wherever the step was."""
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.pending:
            self.forced = True
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the guard started."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __enter__(self) -> "StepGuard":
        if threading.current_thread() is threading.main_thread() and (
            signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False


@contextlib.contextmanager
def save_on_interrupt(save: Callable[[], str]) -> Iterator[StepGuard]:
    """Run a training loop whose Ctrl-C ends in ``save()`` and :class:`Interrupted` (see the module docs).

    Args:
        save: writes the checkpoint of the current (whole-step) state and
            returns the line to show, e.g. :func:`checkpoint_line`. It runs
            with Python's handler back in place: a Ctrl-C while saving aborts
            the save (the write is atomic, the previous checkpoint stays).
    Raises:
        Interrupted: after Ctrl-C, with ``save()``'s line, or without saving
            after a second Ctrl-C.
    """
    guard = StepGuard()
    try:
        with guard:
            yield guard
            guard.check()  # a Ctrl-C during the loop's last step
    except KeyboardInterrupt:
        if guard.forced:
            raise Interrupted(f"interrupted twice: stopped without saving the current step; {RESUME}") from None
        raise Interrupted(save()) from None


def report(e: KeyboardInterrupt) -> int:
    """Print the one line of an interrupted command on stderr; returns :data:`EXIT_INTERRUPTED`."""
    print(str(e) if isinstance(e, Interrupted) else NOTHING_SAVED, file=sys.stderr)
    return EXIT_INTERRUPTED


def child_default_sigint() -> None:
    """``preexec_fn`` for a child process that must see Ctrl-C (SIGINT) even when the parent ignores it.

    A background job of a non-interactive shell starts with SIGINT ignored, and an ignored signal
    stays ignored across ``exec``; restoring the default lets the child's Python install its
    KeyboardInterrupt handler (used by launchers and by the tests that send SIGINT).
    """
    import signal as _signal

    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
