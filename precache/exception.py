"""One exception tree for precache.

::

    PrecacheException
    ├── Invalid (400)            the request itself is wrong
    │   ├── InvalidImageList      empty list, duplicates, malformed ids
    │   ├── ImageNotUsable        exists, but not active / not visible
    │   ├── InvalidOption         unknown or out-of-range job option
    │   ├── InventoryInvalid      the inventory file cannot be used
    │   ├── ConfigInvalid         an option or file of the configuration
    │   └── MalformedNotification a notification the consumer cannot use
    ├── NotFound (404)
    │   ├── AggregateNotFound
    │   ├── ImageNotFound
    │   └── JobNotFound
    ├── Conflict (409)
    │   ├── InvalidStateTransition a job or row cannot move so
    │   └── LeaseLost             another conductor took the job over
    ├── JobStoreError             the job store's database failed
    ├── TemporaryFailure (503)    try again later
    │   ├── ServiceUnavailable    broker, conductor or agent unreachable
    │   └── AgentNotResponding
    └── BackendError              a fetch into the cache failed
        ├── ImageFetchFailed
        ├── ImageVerificationFailed
        └── CacheStoreError

Every class formats ``_msg_fmt`` with its keyword arguments and keeps them
in ``kwargs``: oslo.messaging re-raises this module's exceptions, typed, on
the calling side (``allowed_remote_exmods``). Foreign errors (librbd, HTTP,
messaging) are translated into these at one place per boundary.
"""

from __future__ import annotations

from typing import Any


class PrecacheException(Exception):
    """Base class: formats ``_msg_fmt`` and carries an HTTP-style code."""

    _msg_fmt = 'An unknown error occurred.'
    code = 500

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self._msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                message = '%s: %r' % (self._msg_fmt, kwargs)
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class Invalid(PrecacheException):
    _msg_fmt = 'Invalid request: %(reason)s'
    code = 400


class InvalidImageList(Invalid):
    _msg_fmt = 'Invalid image list: %(reason)s'


class ImageNotUsable(Invalid):
    _msg_fmt = 'Image %(image)s cannot be cached: %(reason)s'


class InvalidOption(Invalid):
    _msg_fmt = 'Invalid job option %(option)s: %(reason)s'


class InventoryInvalid(Invalid):
    _msg_fmt = 'Inventory %(source)s is not usable: %(reason)s'


class ConfigInvalid(Invalid):
    """The configuration cannot be used; the message names the option
    and the file, and says nothing of a request."""

    _msg_fmt = '%(reason)s'


class MalformedNotification(Invalid):
    _msg_fmt = 'Notification %(event_type)s cannot be used: %(reason)s'


class NotFound(PrecacheException):
    _msg_fmt = 'Not found: %(what)s'
    code = 404


class AggregateNotFound(NotFound):
    _msg_fmt = 'Aggregate %(aggregate)s could not be found.'


class ImageNotFound(NotFound):
    _msg_fmt = 'Image %(image)s could not be found.'


class JobNotFound(NotFound):
    _msg_fmt = 'Job %(job)s could not be found.'


class Conflict(PrecacheException):
    _msg_fmt = 'Conflict: %(reason)s'
    code = 409


class InvalidStateTransition(Conflict):
    """A move the state table (precache.states) does not allow; kwargs
    ``what``, ``old`` and ``new`` name it, ``reason`` says it."""


class LeaseLost(Conflict):
    """A write for a job whose lease this conductor no longer holds:
    refused whole, in the transaction that found it."""

    _msg_fmt = 'Job %(job)s: lease lost: %(reason)s'


class JobStoreError(PrecacheException):
    """One line; the database's full error is logged where it happened."""

    _msg_fmt = 'job store error: %(reason)s'


class TemporaryFailure(PrecacheException):
    _msg_fmt = 'Temporary failure: %(reason)s'
    code = 503


class ServiceUnavailable(TemporaryFailure):
    _msg_fmt = '%(service)s is unreachable: %(reason)s'


class AgentNotResponding(TemporaryFailure):
    _msg_fmt = 'Agent on host %(host)s is not responding: %(reason)s'


class BackendError(PrecacheException):
    _msg_fmt = 'Backend error: %(reason)s'


class ImageFetchFailed(BackendError):
    _msg_fmt = 'Fetching image %(image)s failed: %(reason)s'


class ImageVerificationFailed(BackendError):
    _msg_fmt = 'Image %(image)s failed verification: %(reason)s'


class CacheStoreError(BackendError):
    _msg_fmt = 'Cache store error for image %(image)s: %(reason)s'

