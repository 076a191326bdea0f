"""The exception tree: messages, kwargs, codes and the hierarchy."""

from __future__ import annotations

import inspect

import pytest

from precache import exception


def _all_classes() -> list[type[exception.PrecacheException]]:
    return [cls for _, cls in inspect.getmembers(exception, inspect.isclass)
            if issubclass(cls, exception.PrecacheException)]


def test_message_is_formatted_from_kwargs():
    exc = exception.ImageNotUsable(image='abc', reason='status is queued')
    assert str(exc) == 'Image abc cannot be cached: status is queued'
    assert exc.message == str(exc)
    assert exc.kwargs == {'image': 'abc', 'reason': 'status is queued'}
    assert exc.code == 400


def test_explicit_message_wins():
    exc = exception.JobNotFound('gone', job='j1')
    assert str(exc) == 'gone'
    assert exc.kwargs == {'job': 'j1'}


def test_missing_kwargs_do_not_raise():
    exc = exception.AggregateNotFound(wrong='x')
    assert 'Aggregate %(aggregate)s could not be found.' in str(exc)
    assert "'wrong': 'x'" in str(exc)


def test_base_message():
    assert str(exception.PrecacheException()) == 'An unknown error occurred.'


@pytest.mark.parametrize('cls,parent,code', [
    (exception.InvalidImageList, exception.Invalid, 400),
    (exception.ImageNotUsable, exception.Invalid, 400),
    (exception.InvalidOption, exception.Invalid, 400),
    (exception.InventoryInvalid, exception.Invalid, 400),
    (exception.AggregateNotFound, exception.NotFound, 404),
    (exception.ImageNotFound, exception.NotFound, 404),
    (exception.JobNotFound, exception.NotFound, 404),
    (exception.Conflict, exception.PrecacheException, 409),
    (exception.ServiceUnavailable, exception.TemporaryFailure, 503),
    (exception.AgentNotResponding, exception.TemporaryFailure, 503),
    (exception.ImageFetchFailed, exception.BackendError, 500),
    (exception.ImageVerificationFailed, exception.BackendError, 500),
    (exception.CacheStoreError, exception.BackendError, 500),
])
def test_hierarchy_and_codes(cls, parent, code):
    assert issubclass(cls, parent)
    assert cls.code == code


def test_every_class_formats_with_its_own_keys():
    """No class's format string refers to a key it does not document."""
    for cls in _all_classes():
        keys = {'reason': 'r', 'image': 'i', 'option': 'o', 'source': 's',
                'what': 'w', 'aggregate': 'a', 'job': 'j', 'service': 's',
                'host': 'h', 'event_type': 'e'}
        exc = cls(**keys)
        assert '%(' not in str(exc), cls
        assert not str(exc).startswith(cls._msg_fmt + ':'), cls
