"""Functional tests: real RabbitMQ, conductor and agents as processes.

Each test session gets its own RabbitMQ vhost (deleted at the end) and its
own job store, so concurrent runs on one broker never see each other. Each
test starts the services it needs, in parallel, and every process is
stopped (or killed) when the test ends. See harness.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from precache import rpc
from precache.conductor.rpcapi import ConductorAPI
from precache.conf import CONF
from tests.functional.broker import PrivateBroker
from tests.functional.harness import Cluster, db_sync, private_vhost


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        'markers', 'broker_restart: starts, stops and kills a RabbitMQ '
        'node of its own (rabbitmq-server installed; 5672 untouched)')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start services need the broker: mark them ``rabbit``;
    those on a RabbitMQ node of their own ``broker_restart``."""
    for item in items:
        names = getattr(item, 'fixturenames', ())
        if 'cluster' in names:
            item.add_marker(pytest.mark.rabbit)
        if 'private_broker' in names:
            item.add_marker(pytest.mark.broker_restart)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator:
    outcome = yield
    report = outcome.get_result()
    setattr(item, 'rep_' + report.when, report)


@pytest.fixture(scope='session')
def transport_url() -> Iterator[str]:
    """A vhost of its own for this test session, deleted at the end."""
    with private_vhost('precache-functional') as url:
        yield url


@pytest.fixture(scope='session')
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session's job store, migrated by ``precache-manage db sync``.

    Every test's conductor has a host name of its own, so none resumes
    another's jobs at its start; it may take over one a conductor killed
    by an earlier test left unfinished (conductor/liveness.py).
    """
    folder = str(tmp_path_factory.mktemp('jobstore'))
    return db_sync('sqlite:///%s' % os.path.join(folder, 'precache.sqlite'),
                   folder)


@pytest.fixture(scope='session')
def conductor_api(transport_url: str) -> Iterator[ConductorAPI]:
    """The test process's own RPC client of the conductors."""
    transport = rpc.get_transport(CONF, transport_url)
    try:
        yield ConductorAPI(transport, timeout=15)
    finally:
        # NOTE: before the vhost goes, or the driver reconnects forever.
        rpc.cleanup()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Any,
            transport_url: str, db_url: str,
            conductor_api: ConductorAPI) -> Iterator[Cluster]:
    """A test's services; every one still running is killed at the end.

    SIGKILL, not SIGTERM: a graceful stop takes seconds (see
    Cluster.stop_all, which the tests that check it call themselves). When
    the test passed, no service may have logged a traceback or an ERROR
    line unless the test set ``log_errors_expected``.
    """
    cluster = Cluster(str(tmp_path), transport_url, db_url, conductor_api)
    try:
        yield cluster
    finally:
        cluster.kill_all()
    call = getattr(request.node, 'rep_call', None)
    if call is None or not call.passed:
        print(cluster.describe())
        return
    if not cluster.log_errors_expected:
        errors = cluster.log_errors()
        assert not errors, '\n'.join(errors) + '\n' + cluster.describe()


@pytest.fixture(scope='module')
def private_broker(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[PrivateBroker]:
    """A started RabbitMQ node of the module's own (see broker.py), which
    its tests may stop, kill and restart; shut down at the end, however
    the tests ended."""
    broker = PrivateBroker(str(tmp_path_factory.mktemp('rabbitmq')))
    try:
        seconds = broker.start()
        print('RabbitMQ node %s started in %.1fs' % (broker.node, seconds))
        yield broker
    finally:
        broker.stop()
