"""The agent registry's table: one row per host, its latest heartbeat.

A separate store class over the job store's engine, so the registry and
the jobs share one database (and one migration history) but not code.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import sqlalchemy as sa

from precache import objects
from precache.db import api as db_api
from precache.db import models
from precache.db.retry import transaction


@dataclasses.dataclass
class AgentRecord:
    """What an agent last reported, and when."""

    host: str
    cell: str | None = None
    version: str | None = None
    rpc_version: str | None = None
    backends: list[str] = dataclasses.field(default_factory=list)
    stores: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    free_bytes: int | None = None
    cache_bytes: int | None = None
    cache_images: int | None = None
    first_seen: datetime.datetime | None = None
    last_seen: datetime.datetime | None = None
    stopped_at: datetime.datetime | None = None

    FIELDS = ('cell', 'version', 'rpc_version', 'backends', 'stores',
              'free_bytes', 'cache_bytes', 'cache_images')

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ('first_seen', 'last_seen', 'stopped_at'):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ('first_seen', 'last_seen', 'stopped_at'):
            if isinstance(values.get(key), str):
                values[key] = datetime.datetime.fromisoformat(values[key])
        return cls(**values)


def _record(row: models.Agent) -> AgentRecord:
    return AgentRecord(
        host=row.host, cell=row.cell, version=row.version,
        rpc_version=row.rpc_version, backends=list(row.backends or []),
        stores=list(row.stores or []), free_bytes=row.free_bytes,
        cache_bytes=row.cache_bytes, cache_images=row.cache_images,
        first_seen=row.first_seen, last_seen=row.last_seen,
        stopped_at=row.stopped_at)


@dataclasses.dataclass(frozen=True)
class Recorded:
    """What writing one heartbeat did."""

    #: When the host was seen before, None if never.
    before: datetime.datetime | None
    #: Sent before the heartbeat the row holds (received out of order):
    #: the row was left as it was.
    stale: bool = False


def _stale(row: models.Agent, sent_at: datetime.datetime | None,
           stopping: bool, max_lag: float) -> bool:
    """Whether a heartbeat sent at ``sent_at`` was sent before the
    goodbye the row holds, and so must not revive the agent.

    Only a goodbye is guarded, and only against heartbeats sent at most
    ``max_lag`` seconds before it (the ones that can still be in
    flight): a heartbeat older than that comes from a clock that was
    set back across a restart, and counts. Times are the agent's own,
    compared only with each other; an agent (or a row) that does not
    say is never stale. On a tie the goodbye wins: it is the last word.
    """
    if sent_at is None or row.sent_at is None or row.stopped_at is None:
        return False
    lag = (row.sent_at - sent_at).total_seconds()
    if lag == 0:
        return not stopping
    return 0 < lag <= max_lag


class RegistryStore:
    """Reads and writes ``agents`` rows; one short transaction each."""

    def __init__(self, engine: sa.Engine) -> None:
        self._sessions = db_api.Writer(engine)
        self._readers = db_api.reader(engine)

    @transaction
    def heartbeat(self, record: AgentRecord,
                  now: datetime.datetime | None = None,
                  stopping: bool = False,
                  sent_at: datetime.datetime | None = None,
                  max_lag: float = 300.0) -> Recorded:
        """Insert or update the host's row with ``record``, seen ``now``;
        ``stopping``: the agent's goodbye; ``sent_at``: the agent's clock
        when it sent it, if it said; ``max_lag``: how long a heartbeat
        may have been in flight (see :func:`_stale`).

        A heartbeat sent before the one the row holds changes nothing:
        received after its agent's goodbye, it would revive the agent.
        """
        now = now or objects.utcnow()
        with self._sessions.begin() as session:
            row = session.get(models.Agent, record.host,
                              with_for_update=True)
            if row is None:
                row = models.Agent(host=record.host, first_seen=now)
                session.add(row)
            before = row.last_seen
            if _stale(row, sent_at, stopping, max_lag):
                return Recorded(before, stale=True)
            for key in AgentRecord.FIELDS:
                setattr(row, key, getattr(record, key))
            row.last_seen = now
            row.stopped_at = now if stopping else None
            row.sent_at = sent_at
            return Recorded(before)

    @transaction
    def get(self, host: str) -> AgentRecord | None:
        with self._readers.begin() as session:
            row = session.get(models.Agent, host)
            return _record(row) if row is not None else None

    @transaction
    def liveness(self) -> dict[str, AgentRecord]:
        """Every host's cell, RPC version, last heartbeat and goodbye —
        what deciding whether to call it needs — in one query.

        The records carry only those fields: the rest (backends, stores,
        sizes) is not read.
        """
        columns = (models.Agent.host, models.Agent.cell,
                   models.Agent.rpc_version, models.Agent.last_seen,
                   models.Agent.stopped_at)
        with self._readers.begin() as session:
            return {row.host: AgentRecord(
                host=row.host, cell=row.cell, rpc_version=row.rpc_version,
                last_seen=row.last_seen, stopped_at=row.stopped_at)
                for row in session.execute(sa.select(*columns))}

    @transaction
    def list(self, cell: str | None = None) -> list[AgentRecord]:
        query = sa.select(models.Agent).order_by(models.Agent.cell,
                                                 models.Agent.host)
        if cell is not None:
            query = query.where(models.Agent.cell == cell)
        with self._readers.begin() as session:
            return [_record(row) for row in session.scalars(query)]
