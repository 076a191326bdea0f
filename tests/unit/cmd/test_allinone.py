"""precache-all-in-one run twice, as the README's first command is.

The console script runs as a process of its own, on its own state
directory (sample images, SQLite job store, per-host caches).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from precache import objects

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(sys.executable)),
                      'precache-all-in-one')


def _argv(state_dir: str, *extra: str) -> list[str]:
    # NOTE: the smallest sample on all 12 hosts of the 3 cells.
    return [SCRIPT, '--state-dir', state_dir, '--image', 'cirros-0.6.2',
            '--json', *extra]


def _run(state_dir: str, *extra: str) -> tuple[int, objects.Job]:
    done = subprocess.run(
        _argv(state_dir, *extra), capture_output=True, text=True,
        timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert done.stdout.strip(), done.stderr
    return done.returncode, objects.Job.from_dict(json.loads(done.stdout))


def _age_registry(state_dir: str, seconds: int) -> int:
    """Make every agent's row ``seconds`` older and a goodbye; the count."""
    db = sqlite3.connect(os.path.join(state_dir, 'precache.sqlite'))
    try:
        rows = db.execute('SELECT host, last_seen FROM agents').fetchall()
        for host, last_seen in rows:
            old = (datetime.datetime.fromisoformat(last_seen)
                   - datetime.timedelta(seconds=seconds))
            stamp = old.isoformat(sep=' ')
            db.execute('UPDATE agents SET last_seen = ?, stopped_at = ? '
                       'WHERE host = ?', (stamp, stamp, host))
        db.commit()
    finally:
        db.close()
    return len(rows)


def test_second_run_after_old_registry_rows_finds_every_image(tmp_path):
    """The previous run's agents said goodbye 10 minutes ago: the second
    run calls them all the same and finds every image resident."""
    state_dir = str(tmp_path / 'demo')
    code, job = _run(state_dir)
    assert (code, job.counts['cached']) == (0, 12), job.counts

    assert _age_registry(state_dir, 600) == 12
    code, job = _run(state_dir)
    assert job.counts['existing'] == 12, [
        (r.host, r.state.value, r.reason) for r in job.results or []]
    assert code == 0


def _host_states(state_dir: str, job_id: str) -> dict[str, str]:
    db = sqlite3.connect(os.path.join(state_dir, 'precache.sqlite'))
    try:
        return dict(db.execute('SELECT host, state FROM host_results '
                               'WHERE job_id = ?', (job_id,)).fetchall())
    finally:
        db.close()


def test_a_job_interrupted_by_ctrl_c_resumes_on_every_host(tmp_path):
    """The next run resumes the job at once: its agents already listen
    (a call to one not yet listening would be lost on this bus)."""
    state_dir = str(tmp_path / 'demo')
    config = tmp_path / 'slow.conf'
    config.write_text('[conductor]\nmax_concurrent_hosts = 1\n')
    extra = ('--config-file', str(config))
    log = os.path.join(state_dir, 'precache.log')

    def cached_hosts() -> int:
        with open(log) as stream:
            return stream.read().count('cached via file')

    # NOTE: a shell may have started this test with SIGINT ignored, which
    # the child would inherit; a handler here is reset by exec instead.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = subprocess.Popen(
            _argv(state_dir, *extra), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 120
    while not (os.path.exists(log) and cached_hosts()):
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    db = sqlite3.connect(os.path.join(state_dir, 'precache.sqlite'))
    [(job_id,)] = db.execute('SELECT id FROM jobs').fetchall()
    db.close()
    before = _host_states(state_dir, job_id)
    assert 'pending' in before.values(), before

    code, job = _run(state_dir, *extra)
    assert code == 0, job.counts
    after = _host_states(state_dir, job_id)
    assert 'skipped' not in after.values(), after
    assert sorted(after.values()).count('pending') < sorted(
        before.values()).count('pending'), after
