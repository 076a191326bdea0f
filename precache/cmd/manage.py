"""precache-manage: operator commands, safe to run from cron.

Exit codes: 0 every host has every image resident (or the command
succeeded), 1 some host/image failed, 2 bad request, 3 conductor or
message bus unreachable (listed in ``--help``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import oslo_messaging as messaging

from precache import context, objects, rpc, service, version
from precache.cmd import EXIT_UNAVAILABLE, console, fatal, guarded
from precache.conductor import windows
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from precache.db import migration
from precache.db.api import JobStore
from precache.db.leases import LeaseStore


def _conductor(args: argparse.Namespace) -> ConductorAPI:
    rpc.check_reachable(CONF)
    return ConductorAPI(rpc.get_transport(CONF), timeout=args.timeout,
                        retry=2)


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except messaging.MessagingTimeout:
        fatal('no conductor answered on the message bus (is '
              'precache-conductor running?)', EXIT_UNAVAILABLE)
    except messaging.MessagingException as exc:
        fatal('message bus: %s' % exc, EXIT_UNAVAILABLE)


def db_sync(args: argparse.Namespace) -> int:
    migration.upgrade()
    print('Job store is at revision %s' % migration.head())
    return 0


def cache(args: argparse.Namespace) -> int:
    options = {key: value for key, value in (
        ('max_concurrent_hosts', args.max_concurrent_hosts),
        ('max_concurrent_hosts_per_cell', args.max_concurrent_hosts_per_cell),
        ('window', args.window), ('deadline', args.deadline),
        ('hosts', args.hosts), ('dedupe', args.dedupe or None),
        ('source', 'cli'),
    ) if value is not None}
    api = _conductor(args)
    ctxt = context.get_internal_context()
    job = _call(api.cache_images, ctxt, args.aggregate, args.image, options)
    if not job.hosts and not args.json:
        # NOTE: the (empty) job is recorded all the same, for the record.
        print('aggregate %s has no hosts: nothing to do (job %s)'
              % (job.aggregate, job.id))
        return 0
    if not args.wait:
        if args.json:
            console.print_json(job.to_dict())
        else:
            print('Job %s accepted: %d image(s) on %d host(s) of %s'
                  % (job.id, len(job.image_ids), job.hosts, job.aggregate))
        return 0
    return _wait_and_show(api, ctxt, job.id, args.json)


def reconcile(args: argparse.Namespace) -> int:
    """Start a job for what the aggregate lacks of its desired images."""
    api = _conductor(args)
    ctxt = context.get_internal_context()
    job = _call(api.reconcile, ctxt, args.aggregate, hosts=args.hosts,
                source='cli')
    if job is None:
        nothing = _nothing_to_reconcile(api, ctxt, args.aggregate,
                                        args.hosts)
        if args.json:
            console.print_json({'aggregate': args.aggregate, 'job': None,
                                'reason': nothing})
        else:
            print('aggregate %s %s' % (args.aggregate, nothing))
        return 0
    if not args.wait:
        if args.json:
            console.print_json(job.to_dict())
        else:
            print('Job %s %s: %d image(s) on %d host(s) of %s'
                  % (job.id, job.state.value, len(job.image_ids), job.hosts,
                     job.aggregate))
        return 0
    return _wait_and_show(api, ctxt, job.id, args.json)


def _nothing_to_reconcile(api: ConductorAPI, ctxt: context.RequestContext,
                          aggregate: str, only: list[str] | None) -> str:
    """Why reconcile started no job, as the end of a sentence.

    A host that holds no image lacks every desired one: so when reconcile
    found nothing to do, there is none.
    """
    hosts = _call(api.get_resident_images, ctxt, aggregate).get('hosts')
    if not hosts:
        return 'has no hosts: nothing to do'
    hosts = [h for h in hosts if not only or h.get('host') in only]
    if not hosts:
        return 'has no hosts: nothing to do'
    if any(not host.get('images') for host in hosts):
        return 'has no desired images: nothing to do'
    return 'has every desired image on every host: nothing to do'


def _wait_and_show(api: ConductorAPI, ctxt: context.RequestContext,
                   job_id: str, as_json: bool) -> int:
    """Wait for the job; show it: JSON, a table on a terminal, else (cron)
    exactly one summary line, ``job show`` having the details."""
    # NOTE: ``job_id`` may be a short id; poll with the full one.
    job_id = _call(api.get_job, ctxt, job_id, with_results=False).id
    job = console.watch(
        lambda: _call(api.get_job, ctxt, job_id, with_results=False),
        show_progress=False if as_json else None)
    if as_json or console.console().is_terminal:
        job = _call(api.get_job, ctxt, job_id)
        show_job(job, as_json)
    else:
        print(console.summary_line(job))
    return console.exit_code(job)


#: The fields of each (host, image) row, in ``job show --json`` and in
#: the plain table ``job show`` prints off a terminal (cron, scripts).
RESULT_FIELDS = ('host', 'cell', 'image_id', 'state', 'method', 'bytes',
                 'seconds', 'started_at', 'finished_at', 'reason')


def _plain(value: Any) -> str:
    return '-' if value is None or value == '' else str(value)


def show_job(job: Any, as_json: bool) -> None:
    if as_json:
        console.print_json(job.to_dict())
        return
    out = console.console()
    if out.is_terminal:
        out.print(console.host_table(job))
    else:
        # NOTE: one row per (host, image), space separated, the reason
        # last (it may hold spaces): what cut and awk take.
        print('JOB ' + ' '.join(f.upper() for f in RESULT_FIELDS))
        for result in job.results or []:
            row = result.to_dict()
            print(' '.join([job.id, *(_plain(row[f])
                                       for f in RESULT_FIELDS)]))
    deadline = job.options.get('deadline')
    print('Job %s: source %s, deadline %s%s' % (
        job.id, job.options.get('source') or '-', deadline or '-',
        ', reason: %s' % job.reason if job.reason else ''))
    print(console.summary_line(job))


def job_show(args: argparse.Namespace) -> int:
    api = _conductor(args)
    job = _call(api.get_job, context.get_internal_context(), args.job_id)
    show_job(job, args.json)
    return console.exit_code(job) if job.state.is_final else 0


def job_wait(args: argparse.Namespace) -> int:
    return _wait_and_show(_conductor(args), context.get_internal_context(),
                          args.job_id, args.json)


def job_list(args: argparse.Namespace) -> int:
    api = _conductor(args)
    jobs = _call(api.list_jobs, context.get_internal_context(),
                 aggregate=args.aggregate, state=args.state,
                 limit=args.limit, marker=args.marker)
    if args.json:
        console.print_json([job.to_dict() for job in jobs])
    else:
        console.console().print(console.jobs_table(jobs))
    return 0


def _size(value: int | None) -> str:
    if value is None:
        return '-'
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return '%.0f %s' % (value, unit) if unit == 'B' else \
                '%.1f %s' % (value, unit)
        value /= 1024  # type: ignore[assignment]
    return '-'


def agents_list(args: argparse.Namespace) -> int:
    """The agent registry: one line per agent, down ones included."""
    agents = _call(_conductor(args).list_agents,
                   context.get_internal_context())
    if args.json:
        console.print_json(agents)
        return 0
    print('%-24s %-12s %-10s %-8s %-5s %-22s %10s %10s %6s' % (
        'HOST', 'CELL', 'STATE', 'VERSION', 'RPC', 'BACKENDS', 'FREE',
        'CACHE', 'IMAGES'))
    for agent in agents:
        print('%-24s %-12s %-10s %-8s %-5s %-22s %10s %10s %6s' % (
            agent['host'], agent.get('cell') or '-', agent['state'],
            agent.get('version') or '-', agent.get('rpc_version') or '-',
            ','.join(agent.get('backends') or []) or '-',
            _size(agent.get('free_bytes')), _size(agent.get('cache_bytes')),
            '-' if agent.get('cache_images') is None
            else agent['cache_images']))
    return 0


def conductors_list(args: argparse.Namespace) -> int:
    """The conductors' service rows, read from the job store: state
    (up, draining, stopped, or down once silent for service_down_time)
    and the unfinished jobs each holds."""
    store = JobStore()
    try:
        # NOTE: a store not yet migrated is one line that says what to
        # run, not a missing table.
        migration.check_current(store.url)
        leases = LeaseStore(store.engine)
        rows, owned = leases.conductors(), leases.owned()
    finally:
        store.close()
    now = objects.utcnow()
    conductors: list[dict[str, Any]] = []
    for row in rows:
        silence = (now - row.last_seen).total_seconds()
        state = 'down' if row.state != 'stopped' and \
            silence > CONF.conductor.service_down_time else row.state
        conductors.append({
            'host': row.host, 'state': state, 'version': row.version,
            'started_at': row.started_at.isoformat(),
            'last_seen': row.last_seen.isoformat(),
            'silence': round(silence, 1), 'jobs': owned.get(row.host, 0)})
    if args.json:
        console.print_json(conductors)
        return 0
    print('%-24s %-9s %-10s %-20s %9s %5s' % (
        'HOST', 'STATE', 'VERSION', 'STARTED', 'SILENCE', 'JOBS'))
    for each in conductors:
        print('%-24s %-9s %-10s %-20s %8.0fs %5d' % (
            each['host'], each['state'], each['version'] or '-',
            each['started_at'][:19], each['silence'], each['jobs']))
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError('must be >= 1')
    return number


def _window(value: str) -> int:
    try:
        return windows.parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _deadline(value: str) -> str:
    """ISO 8601, or HH:MM: the next such time here (cron's local time)."""
    try:
        return windows.parse_deadline(value).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _host_list(value: str) -> list[str]:
    hosts = [h.strip() for h in value.split(',') if h.strip()]
    if not hosts:
        raise argparse.ArgumentTypeError('no host given')
    return hosts


EXIT_CODES = """exit codes:
  0    done: every host has every image (or the command succeeded)
  1    some host or image failed, or the job did not end done
  2    bad request: command line, unknown aggregate, image or job,
       ambiguous short job id
  3    conductor or message bus unreachable
  130  interrupted"""


def _global_options(parser: argparse.ArgumentParser, after: bool) -> None:
    """Options taken before the command and, for convenience, after it.

    After it, into other names (``late_*``, merged by :func:`_merge`):
    argparse would otherwise let a command's defaults hide the values
    given before it.
    """
    prefix = 'late_' if after else ''
    default: Any = argparse.SUPPRESS if after else None
    parser.add_argument('--config-file', action='append',
                        dest=prefix + 'config_file', metavar='PATH',
                        default=default if after else [],
                        help='configuration file (repeatable)')
    parser.add_argument('--config-dir', dest=prefix + 'config_dir',
                        metavar='DIR',
                        default=default,
                        help='directory of *.conf files')
    parser.add_argument('--timeout', type=_positive,
                        dest=prefix + 'timeout', metavar='SECONDS',
                        default=default if after else 30,
                        help='seconds to wait for the conductor to answer '
                             '(30)')


def _merge(args: argparse.Namespace) -> argparse.Namespace:
    """Fold the global options given after the command into ``args``."""
    args.config_file = [*args.config_file,
                        *getattr(args, 'late_config_file', [])]
    for name in ('config_dir', 'timeout'):
        late = getattr(args, 'late_' + name, None)
        if late is not None:
            setattr(args, name, late)
    return args


JOB_ID_HELP = ('job id, or a unique start of one (4 characters at least, '
               'as the progress bar shows it)')


class _CommandParser(argparse.ArgumentParser):
    """A (sub)command's parser: the global options after it too, and the
    exit codes in its help."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(epilog=EXIT_CODES,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         **kwargs)
        _global_options(self, after=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='precache-manage', description=__doc__.split('\n')[0],
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version',
                        version='precache-manage %s'
                        % version.version_string)
    _global_options(parser, after=False)
    commands = parser.add_subparsers(dest='command', required=True,
                                     parser_class=_CommandParser)

    db = commands.add_parser('db', help='job store schema')
    db_commands = db.add_subparsers(dest='db_command', required=True)
    db_commands.add_parser('sync', help='migrate the job store to the '
                           'latest schema').set_defaults(func=db_sync)

    run = commands.add_parser('cache', help='make images resident on an '
                              'aggregate')
    run.add_argument('--aggregate', required=True,
                     help='aggregate id, uuid or name')
    run.add_argument('--image', action='append', required=True,
                     help='image id (repeatable)')
    run.add_argument('--max-concurrent-hosts', type=_positive,
                     help='hosts at once for this job; only lowers the '
                          "conductor's [conductor] max_concurrent_hosts")
    run.add_argument('--max-concurrent-hosts-per-cell', type=_positive,
                     help='hosts of one cell at once for this job')
    limit = run.add_mutually_exclusive_group()
    limit.add_argument('--window', type=_window,
                       help='maintenance window from now: seconds, or like '
                            '2h, 90m; no host starts after it closes')
    limit.add_argument('--deadline', type=_deadline,
                       help='end of the maintenance window: HH:MM (the '
                            'next such local time) or an ISO 8601 time')
    run.add_argument('--hosts', type=_host_list,
                     help='only these hosts of the aggregate (comma list)')
    run.add_argument('--dedupe', action='store_true',
                     help='return a pending or running job that already '
                          'covers these images and hosts instead')
    run.add_argument('--wait', action='store_true',
                     help='wait for the job and exit 0 only if every host '
                          'has every image')
    run.add_argument('--json', action='store_true',
                     help='print the job as JSON instead of a table or a '
                          'summary line')
    run.set_defaults(func=cache)

    again = commands.add_parser(
        'reconcile', help="start a job for what an aggregate's hosts lack "
        'of its desired images (metadata precache:images, images whose '
        'precache_aggregates names it)')
    again.add_argument('--aggregate', required=True,
                       help='aggregate id, uuid or name')
    again.add_argument('--hosts', type=_host_list,
                       help='only these hosts of the aggregate (comma list)')
    again.add_argument('--wait', action='store_true',
                       help='wait for the job, if one started')
    again.add_argument('--json', action='store_true')
    again.set_defaults(func=reconcile)

    job = commands.add_parser('job', help='look at jobs')
    job_commands = job.add_subparsers(dest='job_command', required=True)
    show = job_commands.add_parser('show', help='one job, every host')
    show.add_argument('job_id', help=JOB_ID_HELP)
    show.add_argument('--json', action='store_true')
    show.set_defaults(func=job_show)
    wait = job_commands.add_parser('wait', help='wait for a job to end')
    wait.add_argument('job_id', help=JOB_ID_HELP)
    wait.add_argument('--json', action='store_true')
    wait.set_defaults(func=job_wait)
    listing = job_commands.add_parser('list', help='jobs, newest first')
    listing.add_argument('--aggregate')
    listing.add_argument('--state', choices=[s.value for s in
                                             objects.JobState])
    listing.add_argument('--limit', type=_positive, default=50)
    listing.add_argument('--marker', help='last job id of the previous page')
    listing.add_argument('--json', action='store_true')
    listing.set_defaults(func=job_list)

    agents = commands.add_parser('agents', help='the agent registry')
    agent_commands = agents.add_subparsers(dest='agents_command',
                                           required=True)
    agent_list = agent_commands.add_parser(
        'list', help='every agent: cell, state (up, down, too old), '
        'version, backends, free and cached bytes')
    agent_list.add_argument('--json', action='store_true')
    agent_list.set_defaults(func=agents_list)

    conductors = commands.add_parser(
        'conductors', help='the conductors (read from the job store)')
    conductor_commands = conductors.add_subparsers(
        dest='conductors_command', required=True)
    conductor_list = conductor_commands.add_parser(
        'list', help='every conductor: state (up, draining, stopped, '
        'down), version, start, silence, unfinished jobs it holds')
    conductor_list.add_argument('--json', action='store_true')
    conductor_list.set_defaults(func=conductors_list)
    return parser


def _start(args: argparse.Namespace) -> None:
    """Read and check the configuration, quiet the logs: what every
    command needs before it runs."""
    config_args = [arg for path in args.config_file
                   for arg in ('--config-file', path)]
    if args.config_dir:
        config_args += ['--config-dir', args.config_dir]
    service.prepare_service(['precache-manage', *config_args])
    if not CONF.debug:
        # NOTE: the CLI's own output is the table; service chatter would
        # garble it and the cron mail.
        logging.getLogger().setLevel(logging.WARNING)
    service.check_config('precache-manage')


@guarded
def main(argv: list[str] | None = None) -> int:
    args = _merge(build_parser().parse_args(argv))
    _start(args)
    try:
        code = args.func(args)
    finally:
        rpc.cleanup()
    sys.exit(code)


if __name__ == '__main__':
    main()
