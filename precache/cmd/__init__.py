"""Console entry points. Errors a user can cause end as one line, no trace."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from concurrent import futures
from typing import Any, NoReturn

import oslo_messaging as messaging
from oslo_config import cfg

from precache import exception
from precache.confcheck import validate

LOG = logging.getLogger(__name__)

#: A bad request, or a configuration the command cannot run with.
EXIT_BAD_REQUEST = 2
EXIT_UNAVAILABLE = 3

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def fatal(message: str, code: int = 1) -> NoReturn:
    print('ERROR: %s' % message, file=sys.stderr)
    sys.exit(code)


def message(exc: BaseException) -> str:
    """An error's own text, without the remote traceback RPC appends."""
    if isinstance(exc, cfg.Error):
        # NOTE: oslo.config's messages embed a LocationInfo(...) repr.
        return validate.scrub(str(exc))
    return getattr(exc, 'message', None) or str(exc)


def guarded(main: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures of ``main`` into one line and an exit code."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except (cfg.Error, exception.Invalid, exception.NotFound) as exc:
            fatal(message(exc), EXIT_BAD_REQUEST)
        except (exception.TemporaryFailure,
                messaging.MessagingException) as exc:
            fatal(message(exc), EXIT_UNAVAILABLE)
        except exception.PrecacheException as exc:
            fatal(message(exc))
        except KeyboardInterrupt:
            fatal('interrupted', 130)
        except Exception as exc:
            LOG.exception('Unexpected error')
            fatal('unexpected error: %s (details in the log)'
                  % str(exc).split('\n')[0])
    wrapper.__name__ = main.__name__
    wrapper.__doc__ = main.__doc__
    return wrapper


def wait_for_signal() -> None:
    """Block the main thread until SIGTERM or SIGINT.

    The kernel may deliver a signal to any thread. Python runs its handler
    only in the main thread, and a main thread blocked on a lock (an
    ``Event.wait``) is not woken for a signal another thread received:
    the service would ignore that SIGTERM. The wake-up fd is written by
    whichever thread gets the signal, so blocking on it always returns.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    for signum in STOP_SIGNALS:
        # NOTE: left in place: a second signal during the graceful stop
        # that follows is ignored, as before.
        signal.signal(signum, lambda *_: None)
    old_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    try:
        while not set(os.read(read_end, 64)) & set(STOP_SIGNALS):
            pass
    finally:
        signal.set_wakeup_fd(old_fd)
        os.close(read_end)
        os.close(write_end)


def stop_all(services: list[Any]) -> None:
    """Stop services together: each wait() takes about a poll interval."""
    for each in services:
        each.stop()
    if services:
        with futures.ThreadPoolExecutor(min(len(services), 32)) as pool:
            list(pool.map(lambda each: each.wait(), services))
