"""What the CLI prints: host table, jobs table, summary, progress."""

from __future__ import annotations

import datetime
import io
import json
import sys

import pytest
from rich.console import Console

from precache import objects
from precache.cmd import console

State = objects.HostImageState
T0 = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
IMG_A = 'aaaaaaaa-0000-4000-8000-000000000001'
IMG_B = 'bbbbbbbb-0000-4000-8000-000000000002'


def _render(renderable) -> str:
    out = Console(file=io.StringIO(), width=220, color_system=None)
    out.print(renderable)
    return out.file.getvalue()


def _job(state=objects.JobState.DONE, results=None, **kwargs):
    results = results if results is not None else [
        objects.HostImageResult('cmp-1', IMG_A, State.CACHED, cell='c1',
                                method=objects.Method.FILE,
                                bytes=3 * 1024 * 1024, seconds=1.25),
        objects.HostImageResult('cmp-1', IMG_B, State.EXISTING, cell='c1',
                                seconds=0.5),
        objects.HostImageResult('cmp-2', IMG_A, State.ERROR, cell='c2',
                                reason='sha512 mismatch'),
        objects.HostImageResult('cmp-2', IMG_B, State.ERROR, cell='c2',
                                reason='sha512 mismatch'),
        objects.HostImageResult('edge-1', IMG_A, State.SKIPPED,
                                reason='agent not responding'),
    ]
    fields = {'id': 'job-1', 'aggregate': 'compute',
              'image_ids': [IMG_A, IMG_B], 'state': state,
              'started_at': T0,
              'finished_at': T0 + datetime.timedelta(seconds=12.34),
              'created_at': T0, 'hosts': 3,
              'counts': objects.count_states(results), 'results': results}
    fields.update(kwargs)
    return objects.Job(**fields)


def _row(text: str, host: str) -> str:
    return next(line for line in text.splitlines() if host in line)


def test_host_table_has_a_row_per_host_and_a_column_per_image():
    text = _render(console.host_table(_job()))
    assert 'job job-1 on compute: done' in text
    header = next(line for line in text.splitlines() if 'host' in line
                  and 'cell' in line)
    assert 'aaaaaaaa' in header and 'bbbbbbbb' in header
    assert header.index('aaaaaaaa') < header.index('bbbbbbbb')
    row = _row(text, 'cmp-1')
    assert row.split()[:4] == ['cmp-1', 'c1', 'cached', 'existing']
    assert 'file' in row and '3.0 MiB' in row and '1.2s' in row
    row = _row(text, 'cmp-2')
    assert row.split()[:4] == ['cmp-2', 'c2', 'error', 'error']
    # One reason per distinct text, not per image.
    assert row.count('sha512 mismatch') == 1
    # A host without a cell, and without a result for image B.
    row = _row(text, 'edge-1')
    assert row.split()[:4] == ['edge-1', '-', 'skipped', '-']
    assert 'agent not responding' in row
    lines = text.splitlines()
    assert [i for i, line in enumerate(lines) if 'cmp-1' in line][0] < \
        [i for i, line in enumerate(lines) if 'cmp-2' in line][0] < \
        [i for i, line in enumerate(lines) if 'edge-1' in line][0]


def _header(text: str) -> str:
    return next(line for line in text.splitlines() if 'host' in line
                and 'cell' in line)


def test_host_table_uses_image_names():
    text = _render(console.host_table(_job(), {IMG_A: 'cirros'}))
    assert 'cirros (aaaaaaaa)' in _header(text)
    assert 'bbbbbbbb' in _header(text)


def test_host_table_uses_the_names_the_job_carries():
    """Names need not be unique: the start of the id goes with each."""
    job = _job(image_names={IMG_A: 'cirros-0.6', IMG_B: 'cirros-0.6'})
    header = _header(_render(console.host_table(job)))
    assert header.split()[:6] == ['host', 'cell', 'cirros-0.6',
                                  '(aaaaaaaa)', 'cirros-0.6', '(bbbbbbbb)']
    # A name given by the caller wins; an image without one: its id.
    job = _job(image_names={IMG_A: 'cirros-0.6'})
    header = _header(_render(console.host_table(job, {IMG_A: 'tiny'})))
    assert header.split()[:5] == ['host', 'cell', 'tiny', '(aaaaaaaa)',
                                  'bbbbbbbb']


def test_image_label():
    assert console.image_label(IMG_A, 'cirros-0.6') == \
        'cirros-0.6 (aaaaaaaa)'
    assert console.image_label(IMG_A, None) == 'aaaaaaaa'
    assert console.image_label(IMG_A, '') == 'aaaaaaaa'


def test_host_table_without_results():
    text = _render(console.host_table(_job(results=[])))
    assert 'job job-1 on compute: done' in text
    assert 'cmp-' not in text


def test_summary_line():
    assert console.summary_line(_job()) == (
        'Job job-1 done: 1 cached, 1 existing, 2 error, 0 unsupported, '
        '1 skipped in 12.3s')
    pending = _job(state=objects.JobState.PENDING, started_at=None,
                   finished_at=None)
    assert console.summary_line(pending).endswith('1 skipped')


def test_jobs_table():
    other = _job(id='job-2', aggregate='edge', created_at=None,
                 state=objects.JobState.RUNNING,
                 options={'source': 'schedule:nightly'})
    text = _render(console.jobs_table([_job(), other]))
    first = _row(text, 'job-1').split()
    assert first == ['job-1', 'compute', 'done', '2', '3', '1', '1', '2',
                     '0', '1', '-', '2026-03-04', '05:06:07']
    assert 'schedule:nightly' in _row(text, 'job-2')
    second = _row(text, 'job-2').split()
    assert second[:3] == ['job-2', 'edge', 'running']
    assert second[-1] == '-'


@pytest.mark.parametrize('count,text', [
    (0, '0 B'), (1023, '1023 B'), (1536, '1.5 KiB'),
    (5 * 1024 ** 2, '5.0 MiB'), (3 * 1024 ** 3, '3.0 GiB'),
    (2048 * 1024 ** 3, '2048.0 GiB')])
def test_size(count, text):
    assert console._size(count) == text


def _fetcher(states):
    calls = []

    def fetch():
        calls.append(1)
        return _job(state=states[min(len(calls), len(states)) - 1])
    return fetch, calls


def test_watch_without_progress_polls_until_final():
    fetch, calls = _fetcher([objects.JobState.PENDING,
                             objects.JobState.RUNNING,
                             objects.JobState.DONE])
    job = console.watch(fetch, interval=0, show_progress=False)
    assert job.state is objects.JobState.DONE
    assert len(calls) == 3


def test_watch_with_progress(capsys):
    fetch, calls = _fetcher([objects.JobState.RUNNING,
                             objects.JobState.DONE])
    job = console.watch(fetch, interval=0, show_progress=True)
    assert job.state is objects.JobState.DONE
    assert len(calls) == 2
    err = capsys.readouterr().err
    assert 'job job-1' in err and '5/5' in err


def test_watch_of_a_final_job_fetches_once():
    fetch, calls = _fetcher([objects.JobState.FAILED])
    assert console.watch(fetch, show_progress=False).state is \
        objects.JobState.FAILED
    assert len(calls) == 1


def test_print_json(capsys):
    console.print_json(_job().to_dict())
    data = json.loads(capsys.readouterr().out)
    assert data['id'] == 'job-1'
    assert data['counts']['error'] == 2
    assert [r['host'] for r in data['results']] == [
        'cmp-1', 'cmp-1', 'cmp-2', 'cmp-2', 'edge-1']


def test_console_is_wide_off_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, 'stdout', io.StringIO())
    assert console.console().width == 160
