"""Start-up shared by every command: configuration and logging."""

from __future__ import annotations

import contextlib
import gc
import io
import sys

import oslo_messaging as messaging
from oslo_config import cfg
from oslo_log import log
from oslo_messaging import opts as messaging_opts

from precache import exception, version
from precache.conf import CONF

_QUIET_LOGGERS = ['amqp=ERROR', 'kombu=WARN', 'oslo_messaging=WARN',
                  'oslo.messaging=WARN', 'stevedore=WARN',
                  'oslo_concurrency.lockutils=WARN', 'alembic=WARN',
                  'sqlalchemy=WARN', 'urllib3=WARN']


def register_library_opts(conf: cfg.ConfigOpts = CONF) -> None:
    """Options precache reads from oslo.log and oslo.messaging."""
    try:
        log.register_options(conf)
    except cfg.ArgsAlreadyParsedError:  # pragma: no cover - already done
        pass
    messaging.set_transport_defaults('precache')
    # NOTE: registered up front (oslo.messaging registers them lazily) so
    # they can be defaulted and read before a transport exists, and so a
    # call never fails on the metrics/tracing groups being absent.
    for group, options in messaging_opts.list_opts():
        conf.register_opts(options,
                           group=None if group == 'DEFAULT' else group)


def prepare_service(argv: list[str], project: str = 'precache',
                    default_config_files: list[str] | None = None,
                    conf: cfg.ConfigOpts = CONF) -> cfg.ConfigOpts:
    """Parse the command line and config files, then set up logging.

    :raises: ConfigInvalid, for a bad value of a command-line option
        (``debug = maybe``) in a file; SystemExit for a bad command line.
    """
    register_library_opts(conf)
    log.set_defaults(default_log_levels=(
        log.get_default_log_levels() + _QUIET_LOGGERS))
    # NOTE: oslo.config checks the values of its command-line options
    # (debug, use_json, ...) found in files while parsing, and then
    # prints a line of its own and exits 1; what it says is held back so
    # such a value is refused as every other bad value is.
    said = io.StringIO()
    translated = False
    try:
        with contextlib.redirect_stderr(said):
            conf(argv[1:], project=project,
                 version=version.version_string,
                 default_config_files=default_config_files)
    except SystemExit:
        from precache.confcheck import validate

        reason = validate.cli_option_error(conf, said.getvalue(), argv[1:])
        if reason is None:
            raise
        translated = True
        raise exception.ConfigInvalid(reason=reason) from None
    finally:
        if not translated:
            sys.stderr.write(said.getvalue())
    log.setup(conf, project)
    return conf


def check_config(prog: str, conf: cfg.ConfigOpts = CONF) -> None:
    """Refuse to start on a configuration ``prog`` cannot run with.

    Call right after :func:`prepare_service`: every value is read once,
    so a bad one stops the service now, in one line naming the option and
    the file, rather than failing each job later; unknown sections and
    options are logged as warnings with the nearest known name.

    :raises: ConfigInvalid
    """
    from precache.confcheck import validate

    validate.check(conf, prog)


def freeze_startup_objects() -> None:
    """Keep what start-up built out of the garbage collector's passes.

    A started service holds some 130,000 objects from its
    imports and set-up (oslo.*, SQLAlchemy, kombu) that live as long as
    it does. Every full collection walked them all: ~80-95 ms with the
    GIL held, so every thread of a conductor stopped for that long in
    the middle of a fan-out (docs/performance.md). Frozen, they are never
    scanned again; what the service allocates later is collected as
    usual. The price: a frozen object that later ends up in a garbage
    cycle is never freed (reference counting still frees the rest), which
    start-up's long-lived objects hardly do. Call once, after start().
    """
    gc.collect()
    gc.freeze()
