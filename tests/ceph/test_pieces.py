"""The pure parts of the RBD support: locations, read plans, zero runs,
the copy pipeline over a fake source (no cluster needed)."""

from __future__ import annotations

import hashlib
import os

import pytest

from precache.agent.rbd import locations, transfer
from precache.agent.sparse import SparseFile

FSID = 'b6c2c1a4-4a39-4c55-9f6e-1d2b3c4d5e6f'


def test_parse_glance_location():
    parsed = locations.parse('rbd://%s/images/abc/snap' % FSID)
    assert parsed == locations.RbdLocation(FSID, 'images', 'abc', 'snap')
    assert parsed.url == 'rbd://%s/images/abc/snap' % FSID


def test_parts_are_unquoted_and_quoted_back():
    parsed = locations.parse('rbd://%s/my%%20pool/a%%2Fb/s%%40p' % FSID)
    assert (parsed.pool, parsed.image, parsed.snapshot) == (
        'my pool', 'a/b', 's@p')
    assert locations.parse(parsed.url) == parsed


@pytest.mark.parametrize('url, reason', [
    ('file:///x', 'not an rbd:// location'),
    ('rbd://%s/images/abc' % FSID, 'need rbd://<fsid>/<pool>/<image>/'
                                   '<snapshot>, got 3 part(s)'),
    ('rbd://%s/images/abc/snap/extra' % FSID, 'got 5 part(s)'),
    ('rbd://%s//abc/snap' % FSID, 'blank component'),
    ('rbd:///images/abc/snap', 'blank component'),
    ('rbd://%s/images/abc/' % FSID, 'blank component'),
    ('rbd://%s/images/a%%00b/snap' % FSID, 'NUL character'),
])
def test_anything_else_is_rejected_with_a_reason(url, reason):
    with pytest.raises(locations.InvalidLocation) as raised:
        locations.parse(url)
    assert reason in str(raised.value)
    assert url in str(raised.value)


def test_parse_all_keeps_order_skips_other_schemes_and_duplicates():
    good = 'rbd://%s/images/abc/snap' % FSID
    found, rejected = locations.parse_all(
        ['/var/lib/x', good, 'rbd://bad', good,
         'http://glance/v2/images/abc/file'])
    assert found == [locations.parse(good)]
    assert len(rejected) == 1 and 'rbd://bad' in rejected[0]


def test_plan_reads_cuts_at_chunk_boundaries():
    chunk = 4
    assert transfer.plan_reads([(0, 10), (14, 3)], 20, chunk) == [
        (0, 4), (4, 4), (8, 2), (14, 2), (16, 1)]
    assert transfer.plan_reads([(18, 10)], 20, chunk) == [(18, 2)]


def test_nonzero_runs_at_block_granularity():
    block = transfer.ZERO_BLOCK
    data = bytearray(6 * block)
    data[block + 5] = 1          # block 1
    data[2 * block] = 1          # block 2
    data[5 * block - 1] = 1      # block 4
    assert transfer.nonzero_runs(bytes(data)) == [
        (block, 3 * block), (4 * block, 5 * block)]
    assert transfer.nonzero_runs(bytes(3 * block)) == []
    assert transfer.nonzero_runs(b'\0' * 10 + b'x') == [(0, 11)]


class FakeImage:
    """Just what transfer.copy uses of rbd.Image."""

    def __init__(self, data: bytes, extents: list[tuple[int, int]],
                 fail_at: int | None = None) -> None:
        self.data = data
        self.extents = extents
        self.fail_at = fail_at
        self.reads: list[tuple[int, int]] = []

    def diff_iterate(self, offset, length, from_snapshot, callback):
        for start, size in reversed(self.extents):   # any order
            callback(start, size, True)
        callback(0, 0, False)

    def read(self, offset, length):
        if self.fail_at is not None and offset <= self.fail_at < \
                offset + length:
            raise OSError(5, 'I/O error')
        self.reads.append((offset, length))
        return self.data[offset:offset + length]


def _image(size: int, extents: list[tuple[int, int]]) -> bytes:
    data = bytearray(size)
    for start, length in extents:
        data[start:start + length] = os.urandom(length)
    return bytes(data)


def test_copy_hashes_logical_bytes_and_writes_sparse(tmp_path):
    mib = 1024 * 1024
    size = 40 * mib + 123
    extents = [(mib, 3 * mib), (10 * mib, 5 * mib + 7), (40 * mib, 123)]
    data = _image(size, extents)
    # An allocated zero run inside an extent: read, not written.
    data = data[:11 * mib] + bytes(2 * mib) + data[13 * mib:]
    path = str(tmp_path / 'out')
    sink = SparseFile(path)
    source = FakeImage(data, extents)
    stats = transfer.copy(source, size, sink, algorithm='sha512',
                          concurrency=3, chunk=mib)
    sink.close()
    assert stats.digest == hashlib.sha512(data).hexdigest()
    assert stats.allocated == sum(n for _, n in extents)
    assert stats.written == stats.allocated - 2 * mib
    with open(path, 'rb') as stream:
        assert stream.read() == data
    assert os.stat(path).st_blocks * 512 <= stats.written + 256 * 1024
    assert all(n <= mib for _, n in source.reads)


def test_copy_stops_at_the_first_error(tmp_path):
    mib = 1024 * 1024
    size = 64 * mib
    source = FakeImage(_image(size, [(0, size)]), [(0, size)],
                       fail_at=8 * mib)
    sink = SparseFile(str(tmp_path / 'out'))
    with pytest.raises(OSError, match='I/O error'):
        transfer.copy(source, size, sink, algorithm='md5', concurrency=2,
                      chunk=mib)
    sink.close()
    # Reads run at most concurrency + 2 ahead of the failed one.
    assert max(offset for offset, _ in source.reads) < 8 * mib + 6 * mib


def test_copy_can_be_cancelled(tmp_path):
    mib = 1024 * 1024
    source = FakeImage(_image(8 * mib, [(0, 8 * mib)]), [(0, 8 * mib)])
    sink = SparseFile(str(tmp_path / 'out'))
    with pytest.raises(transfer.Cancelled, match='lost the lock'):
        transfer.copy(source, 8 * mib, sink, chunk=mib,
                      should_stop=lambda: 'lost the lock')
    sink.close()
