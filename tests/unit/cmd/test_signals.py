"""Services stop on SIGTERM whichever of their threads receives it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# NOTE: a child process whose other thread receives the signals
# (pthread_kill), as the kernel may choose when the process's main thread
# already has a signal pending; a SIGUSR1 handler shows other signals
# wake the main thread without stopping it.
CHILD = textwrap.dedent('''
    import signal, sys, threading, time
    from precache.cmd import wait_for_signal

    signal.signal(signal.SIGUSR1, lambda *_: None)

    def aim():
        for name in sys.argv[1:]:
            time.sleep(0.3)
            signal.pthread_kill(threading.get_ident(),
                                getattr(signal, name))
        time.sleep(60)

    threading.Thread(target=aim, daemon=True).start()
    started = time.monotonic()
    wait_for_signal()
    print('%.1f' % (time.monotonic() - started))
''')


def _stopped_after(*signals: str) -> float:
    done = subprocess.run([sys.executable, '-c', CHILD, *signals],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@pytest.mark.parametrize('signame', ['SIGTERM', 'SIGINT'])
def test_signal_to_another_thread_wakes_the_main_thread(signame):
    assert _stopped_after(signame) < 5


def test_other_signals_do_not_stop_it():
    assert 0.5 < _stopped_after('SIGUSR1', 'SIGUSR1', 'SIGTERM') < 5
