"""precache-all-in-one run twice, as the README's first command is.

The console script runs as a process of its own, on its own state
directory (sample images, SQLite job store, per-host caches).
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import sys

from precache import objects

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(sys.executable)),
                      'precache-all-in-one')


def _run(state_dir: str) -> tuple[int, objects.Job]:
    # NOTE: the smallest sample on all 12 hosts of the 3 cells.
    done = subprocess.run(
        [SCRIPT, '--state-dir', state_dir, '--image', 'cirros-0.6.2',
         '--json'], capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL, check=False)
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
