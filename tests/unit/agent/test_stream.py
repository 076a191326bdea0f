"""VerifyingWriter: hashes, sizes, holes and the rate limit."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from precache import exception, objects
from precache.agent import stream

KiB = 1024
MiB = 1024 * KiB


def _spec(data: bytes, **kwargs) -> objects.ImageSpec:
    fields = {'id': 'img', 'size': len(data), 'os_hash_algo': 'sha512',
              'os_hash_value': hashlib.sha512(data).hexdigest(),
              'checksum': hashlib.md5(data).hexdigest()}  # noqa: S324
    fields.update(kwargs)
    return objects.ImageSpec(**fields)


def _write(image: objects.ImageSpec, path: str, data: bytes,
           chunk: int = 64 * KiB, rate: int = 0) -> int:
    writer = stream.VerifyingWriter(image, str(path), rate)
    for offset in range(0, len(data), chunk):
        writer.write(memoryview(data)[offset:offset + chunk])
    return writer.finish()


def test_expected_digest_prefers_os_hash():
    data = b'abc'
    assert stream.expected_digest(_spec(data)) == (
        'sha512', hashlib.sha512(data).hexdigest())


def test_expected_digest_falls_back_to_md5():
    data = b'abc'
    md5 = hashlib.md5(data).hexdigest()  # noqa: S324
    assert stream.expected_digest(_spec(data, os_hash_algo=None)) == \
        ('md5', md5)
    assert stream.expected_digest(
        _spec(data, os_hash_algo='no-such-algo')) == ('md5', md5)
    assert stream.expected_digest(
        _spec(data, os_hash_value=None)) == ('md5', md5)


def test_expected_digest_is_case_insensitive_and_optional():
    data = b'abc'
    upper = hashlib.sha512(data).hexdigest().upper()
    assert stream.expected_digest(_spec(data, os_hash_value=upper))[1] == \
        upper.lower()
    assert stream.expected_digest(objects.ImageSpec(id='i')) is None


def test_sha512_verified(tmp_path):
    data = os.urandom(300 * KiB)
    path = tmp_path / 'out'
    writer = stream.VerifyingWriter(_spec(data), str(path))
    writer.write(data)
    assert writer.verified_with == 'sha512'
    assert writer.finish() == len(data)
    assert path.read_bytes() == data


def test_sha512_mismatch(tmp_path):
    data = os.urandom(100 * KiB)
    image = _spec(data, os_hash_value=hashlib.sha512(b'x').hexdigest())
    with pytest.raises(exception.ImageVerificationFailed,
                       match='sha512 mismatch'):
        _write(image, tmp_path / 'out', data)


def test_md5_fallback_verified(tmp_path):
    data = os.urandom(100 * KiB)
    image = _spec(data, os_hash_algo=None, os_hash_value=None)
    writer = stream.VerifyingWriter(image, str(tmp_path / 'out'))
    writer.write(data)
    assert writer.verified_with == 'md5'
    assert writer.finish() == len(data)


def test_md5_fallback_mismatch(tmp_path):
    data = os.urandom(100 * KiB)
    image = _spec(data, os_hash_algo=None, checksum='0' * 32)
    with pytest.raises(exception.ImageVerificationFailed,
                       match='md5 mismatch'):
        _write(image, tmp_path / 'out', data)


def test_no_hash_known_still_checks_size(tmp_path):
    data = os.urandom(10 * KiB)
    image = objects.ImageSpec(id='img', size=len(data))
    writer = stream.VerifyingWriter(image, str(tmp_path / 'out'))
    assert writer.verified_with is None
    writer.write(data)
    assert writer.finish() == len(data)


def test_short_stream_fails_size_check(tmp_path):
    data = os.urandom(100 * KiB)
    image = _spec(data)
    with pytest.raises(exception.ImageVerificationFailed,
                       match='got 51200 bytes, expected 102400'):
        _write(image, tmp_path / 'out', data[:50 * KiB])


def test_long_stream_fails_as_soon_as_it_exceeds(tmp_path):
    data = os.urandom(100 * KiB)
    image = _spec(data[:60 * KiB])
    writer = stream.VerifyingWriter(image, str(tmp_path / 'out'))
    writer.write(data[:32 * KiB])
    with pytest.raises(exception.ImageVerificationFailed,
                       match='more than the expected 61440 bytes'):
        writer.write(data[32 * KiB:64 * KiB])
    writer.abort()


def test_zeros_become_holes(tmp_path):
    data = bytearray(8 * MiB)
    data[5 * MiB:5 * MiB + 4096] = os.urandom(4096)
    data = bytes(data)
    path = tmp_path / 'sparse'
    assert _write(_spec(data), path, data, chunk=1 * MiB) == len(data)
    info = os.stat(path)
    assert info.st_size == len(data)
    # One MiB of data at most (the non-zero chunk), not 8.
    assert info.st_blocks * 512 <= 1 * MiB
    with open(path, 'rb') as reader:
        assert hashlib.sha512(reader.read()).hexdigest() == \
            hashlib.sha512(data).hexdigest()


@pytest.mark.parametrize('as_view', [False, True])
def test_zero_runs_inside_a_chunk_become_holes(tmp_path, as_view):
    """4 MiB chunks (glance-http's) that are mostly zeros: only their
    64 KiB blocks of data take space, as with rbd-export."""
    data = bytearray(16 * MiB)
    for offset in range(0, len(data), 4 * MiB):
        data[offset + MiB:offset + MiB + 100] = os.urandom(100)
        data[offset + 3 * MiB - 1] = 1  # the last byte of a block
    data = bytes(data)
    image = _spec(data)
    path = tmp_path / 'sparse'
    writer = stream.VerifyingWriter(image, str(path))
    for offset in range(0, len(data), 4 * MiB):
        chunk = data[offset:offset + 4 * MiB]
        writer.write(memoryview(chunk) if as_view else chunk)
    assert writer.finish() == len(data)
    # 2 blocks of 64 KiB per chunk hold data: 512 KiB of 16 MiB (plus
    # the file system's own blocks); whole chunks would take 16 MiB.
    assert os.stat(path).st_blocks * 512 <= 1 * MiB
    assert path.read_bytes() == data


def test_nonzero_runs_at_block_granularity():
    block = stream.ZERO_BLOCK
    data = bytearray(5 * block + 10)
    data[block + 20] = 1
    data[2 * block] = 1
    data[-1] = 1
    assert stream.nonzero_runs(data) == [(block, 3 * block),
                                         (5 * block, 5 * block + 10)]
    assert stream.nonzero_runs(bytes(3 * block)) == []
    assert stream.nonzero_runs(b'') == []
    assert stream.nonzero_runs(b'\0' * 10 + b'x') == [(0, 11)]


def test_trailing_zeros_keep_the_size(tmp_path):
    data = os.urandom(4096) + bytes(2 * MiB)
    path = tmp_path / 'tail'
    _write(_spec(data), path, data, chunk=1 * MiB)
    assert os.stat(path).st_size == len(data)
    assert path.read_bytes() == data


def test_rate_limit_slows_the_write(tmp_path):
    data = os.urandom(512 * KiB)
    start = time.monotonic()
    _write(_spec(data), tmp_path / 'out', data, chunk=64 * KiB, rate=1024)
    elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 5


def test_no_rate_limit_never_sleeps():
    limiter = stream.RateLimiter(0)
    start = time.monotonic()
    limiter.consumed(10 * 1024 * MiB)  # 10 GiB "at once"
    assert time.monotonic() - start < 1
    assert limiter.sent == 0


def test_rate_limiter_sleeps_the_debt():
    limiter = stream.RateLimiter(100)  # 100 KiB/s
    start = time.monotonic()
    limiter.consumed(20 * KiB)        # 0.2 s worth
    assert 0.15 <= time.monotonic() - start < 2


def test_a_buffer_refilled_after_each_write_is_hashed_as_it_was(tmp_path):
    """The hash runs behind the writes, in a thread of its own: a caller
    that reuses one buffer (the file backend) must not change what it
    hashes."""
    data = os.urandom(3 * MiB + 123)
    path = tmp_path / 'out'
    writer = stream.VerifyingWriter(_spec(data), str(path))
    buffer = bytearray(256 * KiB)
    for offset in range(0, len(data), len(buffer)):
        piece = data[offset:offset + len(buffer)]
        buffer[:len(piece)] = piece
        writer.write(buffer if len(piece) == len(buffer)
                     else memoryview(buffer)[:len(piece)])
        buffer[:] = bytes(len(buffer))  # refilled at once
    assert writer.finish() == len(data)
    assert path.read_bytes() == data


def test_ordered_hash_is_the_hash_of_the_bytes_in_order():
    pieces = [os.urandom(n) for n in (10, 5000, 3 * MiB, 1, 70000)]
    ordered = stream.OrderedHash('sha512', depth=1)
    for piece in pieces:
        ordered.update(piece)
    assert ordered.hexdigest() == hashlib.sha512(b''.join(pieces)
                                                 ).hexdigest()
    ordered.close()
    ordered.close()  # idempotent
