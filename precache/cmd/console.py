"""What the CLI shows people: a live progress bar and readable tables."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from precache import objects

State = objects.HostImageState

STYLES = {State.CACHED: 'green', State.EXISTING: 'cyan', State.ERROR: 'red',
          State.UNSUPPORTED: 'yellow', State.SKIPPED: 'magenta',
          State.PENDING: 'dim', State.RUNNING: 'blue'}


def console(stderr: bool = False) -> Console:
    # NOTE: off a terminal (cron mail, CI logs) rich would wrap at 80.
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False,
                   width=None if stream.isatty() else 160)


def exit_code(job: objects.Job) -> int:
    """0 when every (host, image) is resident, else 1."""
    counts = job.counts
    resident = counts.get('cached', 0) + counts.get('existing', 0)
    total = sum(counts.values())
    return 0 if job.state is objects.JobState.DONE and \
        resident == total else 1


def _done(job: objects.Job) -> int:
    return sum(job.counts.get(s.value, 0) for s in objects.FINAL_STATES)


def watch(fetch: Callable[[], objects.Job], interval: float = 0.5,
          show_progress: bool | None = None) -> objects.Job:
    """Poll a job until it is final, with a progress bar on a TTY."""
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    job = fetch()
    if not show_progress:
        while not job.state.is_final:
            time.sleep(interval)
            job = fetch()
        return job
    columns = (SpinnerColumn(), TextColumn('{task.description}'),
               BarColumn(), MofNCompleteColumn(),
               TextColumn('host×image'), TimeElapsedColumn())
    with Progress(*columns, console=console(stderr=True),
                  transient=False) as progress:
        task = progress.add_task('', total=sum(job.counts.values()) or 1)
        while True:
            progress.update(task, completed=_done(job),
                            description='job %s  %s' % (
                                job.id[:8], _short_counts(job)))
            if job.state.is_final:
                break
            time.sleep(interval)
            job = fetch()
    return job


def _short_counts(job: objects.Job) -> str:
    parts = []
    for state in (*objects.FINAL_STATES, State.RUNNING):
        count = job.counts.get(state.value, 0)
        if count:
            parts.append('[%s]%d %s[/]' % (STYLES[state], count,
                                           state.value))
    return ' '.join(parts) or 'starting'


def _size(count: int) -> str:
    value = float(count)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if value < 1024 or unit == 'GiB':
            return '%.0f %s' % (value, unit) if unit == 'B' else \
                '%.1f %s' % (value, unit)
        value /= 1024
    return str(count)


def image_label(image_id: str, name: str | None) -> str:
    """``cirros-0.6 (3f2a1b9c)``: the name people know, and the start of
    the id, since image names need not be unique; the id alone (its
    start) when the image has no name."""
    return '%s (%s)' % (name, image_id[:8]) if name else image_id[:8]


def host_table(job: objects.Job,
               image_names: dict[str, str] | None = None) -> Table:
    """One row per host, one column per image: state and method.

    ``image_names`` adds to (or overrides) the names the job carries.
    """
    names = {**job.image_names, **(image_names or {})}
    table = Table(box=box.SIMPLE_HEAD, title='job %s on %s: %s' % (
        job.id, job.aggregate, job.state.value), title_justify='left')
    table.add_column('host', no_wrap=True)
    table.add_column('cell', no_wrap=True)
    for image_id in job.image_ids:
        table.add_column(image_label(image_id, names.get(image_id)),
                         no_wrap=True)
    table.add_column('via', no_wrap=True)
    table.add_column('fetched', justify='right', no_wrap=True)
    table.add_column('time', justify='right')
    table.add_column('reason', overflow='fold', max_width=48)
    rows: dict[str, dict[str, objects.HostImageResult]] = {}
    for result in job.results or []:
        rows.setdefault(result.host, {})[result.image_id] = result
    for host in sorted(rows):
        by_image = rows[host]
        cells = []
        for image_id in job.image_ids:
            found = by_image.get(image_id)
            cells.append('[%s]%s[/]' % (STYLES[found.state],
                                        found.state.value)
                         if found else '-')
        fetched = sum(r.bytes for r in by_image.values()
                      if r.state is State.CACHED)
        seconds = max((r.seconds for r in by_image.values()), default=0)
        reasons = sorted({r.reason for r in by_image.values() if r.reason})
        methods = sorted({r.method.value for r in by_image.values()
                          if r.method})
        any_result = next(iter(by_image.values()))
        table.add_row(host, any_result.cell or '-', *cells,
                      ','.join(methods) or '-',
                      _size(fetched) if fetched else '-',
                      '%.1fs' % seconds, '; '.join(reasons))
    return table


def summary_line(job: objects.Job) -> str:
    seconds = job.seconds
    return 'Job %s %s: %s%s' % (
        job.id, job.state.value, objects.summary_text(job.counts),
        ' in %.1fs' % seconds if seconds is not None else '')


def jobs_table(jobs: list[objects.Job]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    for column in ('id', 'aggregate', 'state', 'images', 'hosts', 'cached',
                   'existing', 'error', 'unsupported', 'skipped', 'source',
                   'created'):
        table.add_column(column, justify='right' if column in (
            'images', 'hosts', 'cached', 'existing', 'error', 'unsupported',
            'skipped') else 'left')
    for job in jobs:
        table.add_row(
            job.id, job.aggregate, job.state.value, str(len(job.image_ids)),
            str(job.hosts),
            *(str(job.counts.get(s.value, 0)) for s in objects.FINAL_STATES),
            str(job.options.get('source') or '-'),
            job.created_at.strftime('%Y-%m-%d %H:%M:%S')
            if job.created_at else '-')
    return table


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))
