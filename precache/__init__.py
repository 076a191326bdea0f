"""precache: make VM images resident on compute hosts before they are needed.

precache runs on native threads only. oslo.service (imported by
oslo.messaging) defaults to its eventlet backend, so the threading one is
chosen here, before anything imports oslo.messaging; eventlet itself is
still imported by oslo.utils to *detect* monkey-patching, which it never
does here, so its deprecation banner is silenced.
"""

import warnings

warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')


def _use_native_threads() -> None:
    from oslo_service import backend

    if backend.get_backend_type() is None:
        backend.init_backend(backend.BackendType.THREADING)


_use_native_threads()
