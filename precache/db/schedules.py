"""The built-in schedules' table: which occurrence of each ran, and how.

A separate store class over the job store's engine, like the registry's.
Claiming is one transaction under a per-schedule lock, so whichever
conductors run the same schedules, each occurrence starts at most one job
and never while the schedule's previous job is still pending or running.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum

import sqlalchemy as sa
from sqlalchemy import orm

from precache import objects
from precache.db import models
from precache.db.api import Writer, reader, serialize
from precache.db.retry import transaction

#: A claim whose job was never recorded (its conductor died while
#: creating it) stops blocking the schedule after this long.
CLAIM_TIMEOUT = datetime.timedelta(minutes=5)


class Claim(str, enum.Enum):
    CLAIMED = 'claimed'  # this caller runs the occurrence
    DONE = 'done'        # it (or a later one) has been claimed already
    BUSY = 'busy'        # the previous run is still pending or running


@dataclasses.dataclass
class ScheduleRecord:
    name: str
    occurrence: datetime.datetime | None = None
    job_id: str | None = None
    conductor: str | None = None
    claimed_at: datetime.datetime | None = None
    note: str | None = None


class ScheduleStore:
    def __init__(self, engine: sa.Engine) -> None:
        self._sessions = Writer(engine)
        self._readers = reader(engine)

    @transaction
    def get(self, name: str) -> ScheduleRecord | None:
        with self._readers.begin() as session:
            row = session.get(models.ScheduleRun, name)
            return None if row is None else ScheduleRecord(
                name=row.name, occurrence=row.occurrence, job_id=row.job_id,
                conductor=row.conductor, claimed_at=row.claimed_at,
                note=row.note)

    @transaction
    def claim(self, name: str, occurrence: datetime.datetime,
              conductor: str, now: datetime.datetime | None = None) -> Claim:
        """Take ``occurrence`` of schedule ``name`` for ``conductor``."""
        now = now or objects.utcnow()
        with self._sessions.begin() as session:
            serialize(session, 'schedule:%s' % name)
            row = session.get(models.ScheduleRun, name, with_for_update=True)
            if row is None:
                row = models.ScheduleRun(name=name)
                session.add(row)
            elif row.occurrence is not None and row.occurrence >= occurrence:
                return Claim.DONE
            elif self._running(session, row, now):
                return Claim.BUSY
            row.occurrence = occurrence
            row.conductor = conductor
            row.claimed_at = now
            row.job_id = None
            row.note = None
            return Claim.CLAIMED

    @staticmethod
    def _running(session: orm.Session, row: models.ScheduleRun,
                 now: datetime.datetime) -> bool:
        if row.job_id is None:
            return row.note is None and row.claimed_at is not None and \
                now - row.claimed_at < CLAIM_TIMEOUT
        state = session.scalar(sa.select(models.Job.state)
                               .where(models.Job.id == row.job_id))
        return state in (objects.JobState.PENDING.value,
                         objects.JobState.RUNNING.value)

    @transaction
    def finish_claim(self, name: str, occurrence: datetime.datetime,
                     job_id: str | None = None,
                     note: str | None = None) -> None:
        """Record the job (or why there is none) of a claimed occurrence."""
        with self._sessions.begin() as session:
            session.execute(
                sa.update(models.ScheduleRun)
                .where(models.ScheduleRun.name == name,
                       models.ScheduleRun.occurrence == occurrence)
                .values(job_id=job_id, note=note))
