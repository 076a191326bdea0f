"""Store transactions re-run on deadlock; database errors made short.

MySQL/MariaDB report a lost row-lock race as a deadlock (1213) or a lock
wait timeout (1205), and Galera reports every write conflict between two
nodes the same way, at commit; PostgreSQL reports serialization failures
(40001) and deadlocks (40P01). The transaction was rolled back whole, so
running it again is what oslo.db's ``wrap_db_retry`` does, and what this
does, with tenacity: bounded, with jittered backoff, each attempt logged.

Any other database error is logged here once, with its statement, and
raised as one line (:class:`~precache.exception.JobStoreError`): it ends
up in job and host reasons, where a statement dump is no use.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import sqlalchemy as sa
import tenacity

from precache import exception
from precache.conf import CONF

LOG = logging.getLogger(__name__)

#: MySQL/MariaDB error codes: deadlock found, lock wait timeout.
MYSQL_DEADLOCKS = frozenset({1213, 1205})
#: PostgreSQL SQLSTATEs: serialization_failure, deadlock_detected.
POSTGRES_DEADLOCKS = frozenset({'40001', '40P01'})

#: Waits are random up to FIRST_WAIT * 2**attempt seconds ("full jitter":
#: conductors that collided do not collide again in step), at most
#: LONGEST_WAIT.
FIRST_WAIT = 0.05
LONGEST_WAIT = 2.0

F = TypeVar('F', bound=Callable[..., Any])


def is_deadlock(error: BaseException) -> bool:
    """Whether ``error`` is a lost lock race worth running again."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    driver_error = error.orig
    if getattr(driver_error, 'pgcode', None) in POSTGRES_DEADLOCKS:
        return True
    code = next(iter(getattr(driver_error, 'args', ())), None)
    return code in MYSQL_DEADLOCKS


def summary(error: BaseException) -> str:
    """The driver's error class and the first line of its message."""
    driver_error = getattr(error, 'orig', None) or error
    lines = str(driver_error).strip().splitlines() or ['']
    first = lines[0]
    if len(first) > 200:
        first = first[:197] + '...'
    return '%s: %s' % (type(driver_error).__name__, first)


def _call(func: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """``name(ids)``: which call, of which job(s) or host."""
    first: Any = args[1] if len(args) > 1 else None
    if isinstance(first, str):
        ids = [first]
    elif isinstance(getattr(first, 'host', None), str):
        ids = [first.host]
    else:
        # NOTE: record_progress: its claims' and results' job ids.
        ids = [item[0] for batch in args[1:3] if isinstance(batch, list)
               for item in batch if isinstance(item, tuple)]
    name = func.__name__.lstrip('_')
    return '%s(%s)' % (name, ', '.join(dict.fromkeys(ids)))


def transaction(func: F) -> F:
    """Re-run the store method ``func`` (one transaction) on deadlock;
    raise any database error as JobStoreError."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        attempts = CONF.database.max_deadlock_retries + 1
        call = _call(func, args)

        def log_retry(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None and state.next_action
            LOG.warning('Job store: %(call)s lost a lock race (attempt '
                        '%(attempt)d of %(attempts)d), running it again '
                        'in %(wait).2fs: %(error)s',
                        {'call': call, 'attempt': state.attempt_number,
                         'attempts': attempts,
                         'wait': state.next_action.sleep,
                         'error': summary(
                             cast(BaseException,
                                  state.outcome.exception()))})

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_deadlock),
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_random_exponential(multiplier=FIRST_WAIT,
                                                  max=LONGEST_WAIT),
            before_sleep=log_retry, reraise=True)
        try:
            return retrying(func, *args, **kwargs)
        except sa.exc.SQLAlchemyError as error:
            LOG.error('Job store: %(call)s failed: %(error)s',
                      {'call': call, 'error': error})
            # NOTE: from None: the statement is in the line above; the
            # callers log this one's traceback again.
            raise exception.JobStoreError(reason=summary(error)) from None

    return cast(F, wrapper)
