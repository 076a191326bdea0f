"""The file store's former import path, kept for callers not yet moved
to :mod:`precache.agent.stores.file` (test fixtures, benchmarks)."""

from precache.agent.stores.file import TEMP_SUFFIX, FileStore, cache_name

__all__ = ['TEMP_SUFFIX', 'FileStore', 'cache_name']
