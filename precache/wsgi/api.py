"""``precache.wsgi.api:application`` for gunicorn or uwsgi.

Configuration comes from ``$PRECACHE_CONFIG_FILES`` (comma-separated) and
``$PRECACHE_CONFIG_DIR``, else oslo.config's defaults
(``/etc/precache/precache.conf``). The server's own command line is never
parsed as ours. The application is built on first access, in each worker
after the server forked, so no RPC connection crosses a fork.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from precache import service
from precache.api import app as api_app

_lock = threading.Lock()
_application: Any = None


def init_application() -> Any:
    argv = ['precache-api']
    for path in filter(None, os.environ.get('PRECACHE_CONFIG_FILES',
                                            '').split(',')):
        argv += ['--config-file', path.strip()]
    if os.environ.get('PRECACHE_CONFIG_DIR'):
        argv += ['--config-dir', os.environ['PRECACHE_CONFIG_DIR']]
    service.prepare_service(argv)
    service.check_config('precache-api')
    return api_app.build_app()


def __getattr__(name: str) -> Any:
    global _application
    if name != 'application':
        raise AttributeError(name)
    with _lock:
        if _application is None:
            _application = init_application()
        return _application
