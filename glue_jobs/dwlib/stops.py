"""A stop (SIGTERM, Ctrl-C) that comes while a run settles waits until the run has settled.

The handlers of `dw` and of the Glue entry points raise an exception where the signal finds the main thread. In
the middle of a few short steps that would do harm: taking the lock (written, but not yet known as ours, so never
given back), writing the first ledger entry (left saying `running`, the run not yet unwinding), writing the final
entry and the `runs` row (an entry left saying `running` for a run that finished), giving the lock back (the next
run waits out the job's timeout). Those steps run inside `settling()`;
a first stop there is kept and raised when the step is done. A second stop is not deferred: the handler does what
it does for a stop during a cleanup (`dw` ends at once), so a step that hangs can still be stopped.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

# The stops kept while the main thread settles; None when it does not.
_kept: list[BaseException] | None = None


def defer(stop: BaseException) -> bool:
    """Called by a signal handler (on the main thread) with what it would raise: True if the main thread is
    settling and this is the first stop since, in which case `settling()` raises it when the step is done."""
    if _kept is None or _kept:
        return False
    _kept.append(stop)
    stop.came_while_settling = True  # type: ignore[attr-defined]
    with contextlib.suppress(OSError):  # a line now, so that a stop that seems to wait is not sent again at once
        os.write(2, f"stopping ({stop}) once the write under way is done; a second stop ends at once\n".encode())
    return True


def came_while_settling(stop: BaseException) -> bool:
    """Whether `stop` waited for a step of `settling()`: the run's lock and outcome were written whole."""
    return bool(getattr(stop, "came_while_settling", False))


@contextlib.contextmanager
def settling(hand_over: list[BaseException] | None = None) -> Iterator[None]:
    """A step a stop must not cut in two: a stop that comes during it is raised once it is done (from the end of
    this block; after an error of the step, in its place, carrying it as its context). With `hand_over`, a step
    that ends without an error puts the stop there instead, for the caller to raise where its unwinding starts."""
    global _kept
    if _kept is not None or threading.current_thread() is not threading.main_thread():
        yield  # nested, or off the main thread (which signals never interrupt)
        return
    _kept = []
    try:
        yield
    except BaseException as error:
        kept, _kept = _kept, None
        if kept:
            raise kept[0] from error
        raise
    kept, _kept = _kept, None
    if kept and hand_over is not None:
        hand_over.extend(kept)
    elif kept:
        raise kept[0]
