"""Conductors' service rows and their leases on jobs.

A job's ``conductor`` owns it through a lease: ``lease_generation``
moves by one whenever another conductor (or the same one, restarted)
takes it, and ``lease_expires_at`` is how long the owner's last renewal
keeps others off. Every write a conductor makes for a job it runs is
fenced by the lease it holds (:func:`fence`, in the write's own
transaction), so a conductor that was paused or cut off past its lease
cannot write over the results of the one that took the job over.

Service rows are Nova's: each conductor writes ``last_seen`` every
``report_interval``; one silent for ``service_down_time`` is down.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy import orm

from precache import exception, objects
from precache.db import models
from precache.db.engine import Writer, reader
from precache.db.retry import transaction

#: The job states a lease matters in.
UNFINISHED = (objects.JobState.PENDING.value, objects.JobState.RUNNING.value)


@dataclasses.dataclass(frozen=True)
class Lease:
    """What a conductor holds on a job: its name and the generation."""

    owner: str
    generation: int


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A job another conductor may take: whose it was, and why."""

    job_id: str
    owner: str | None
    generation: int
    why: str


@dataclasses.dataclass
class ConductorRecord:
    host: str
    state: str
    version: str | None
    started_at: datetime.datetime
    last_seen: datetime.datetime


def fence(session: orm.Session, job_ids: Iterable[str],
          leases: Mapping[str, Lease]) -> None:
    """Refuse the transaction unless each job still has the lease given.

    Row locks are taken in id order (writers that fence several jobs do
    not deadlock each other); a takeover committed meanwhile is seen.

    :raises: LeaseLost
    """
    for job_id in sorted(set(job_ids) & set(leases)):
        lease = leases[job_id]
        row = session.execute(
            sa.select(models.Job.conductor, models.Job.lease_generation)
            .where(models.Job.id == job_id).with_for_update()).first()
        if row is None:
            raise exception.JobNotFound(job=job_id)
        if (row.conductor, row.lease_generation) != (lease.owner,
                                                     lease.generation):
            raise exception.LeaseLost(
                job=job_id, reason='%s held generation %d, now %s holds %d'
                % (lease.owner, lease.generation, row.conductor,
                   row.lease_generation))


def _seconds(value: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=value)


class LeaseStore:
    """Service rows and job leases on the job store's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self._sessions = Writer(engine)
        self._readers = reader(engine)

    # -- service rows ------------------------------------------------------

    @transaction
    def report(self, host: str, state: str, version: str | None,
               started: bool = False) -> None:
        """Write the conductor's row: seen now, in ``state``;
        ``started``: a new process (its start time)."""
        now = objects.utcnow()
        with self._sessions.begin() as session:
            row = session.get(models.Conductor, host, with_for_update=True)
            if row is None:
                row = models.Conductor(host=host, started_at=now)
                session.add(row)
            elif started:
                row.started_at = now
            row.state, row.version, row.last_seen = state, version, now

    @transaction
    def conductors(self) -> list[ConductorRecord]:
        with self._readers.begin() as session:
            return [ConductorRecord(
                host=row.host, state=row.state, version=row.version,
                started_at=row.started_at, last_seen=row.last_seen)
                for row in session.scalars(
                    sa.select(models.Conductor)
                    .order_by(models.Conductor.host))]

    @transaction
    def owned(self) -> dict[str, int]:
        """Unfinished jobs per owning conductor."""
        job = models.Job
        with self._readers.begin() as session:
            return dict(session.execute(
                sa.select(job.conductor, sa.func.count())
                .where(job.state.in_(UNFINISHED), job.conductor.isnot(None))
                .group_by(job.conductor)).all())

    def live_conductors(self, down_after: float) -> list[str]:
        """Conductors up or draining, heard within ``down_after`` s."""
        now = objects.utcnow()
        return [row.host for row in self.conductors()
                if row.state != 'stopped'
                and (now - row.last_seen).total_seconds() <= down_after]

    # -- leases ------------------------------------------------------------

    @staticmethod
    def _takeable(now: datetime.datetime, live: list[str]
                  ) -> sa.ColumnElement[bool]:
        job = models.Job
        return sa.and_(job.state.in_(UNFINISHED), sa.or_(
            job.lease_expires_at < now, job.conductor.is_(None),
            job.conductor.not_in(live) if live else sa.true()))

    @transaction
    def candidates(self, live: list[str]) -> list[Candidate]:
        """Unfinished jobs whose lease expired or whose owner is not
        among ``live``, oldest first."""
        now = objects.utcnow()
        job = models.Job
        with self._readers.begin() as session:
            rows = session.execute(
                sa.select(job.id, job.conductor, job.lease_generation)
                .where(self._takeable(now, live))
                .order_by(job.created_at)).all()
        found = []
        for row in rows:
            why = ('lease of %s expired' % row.conductor
                   if row.conductor in live
                   else 'conductor %s is down or stopped' % row.conductor)
            found.append(Candidate(row.id, row.conductor,
                                   row.lease_generation, why))
        return found

    @transaction
    def take_over(self, candidate: Candidate, owner: str, lease_time: float,
                  live: list[str]) -> Lease | None:
        """Compare-and-swap: the job is ``owner``'s with the next
        generation if nobody took or renewed it since ``candidate`` was
        read; else None."""
        now = objects.utcnow()
        job = models.Job
        generation = candidate.generation + 1
        with self._sessions.begin() as session:
            result: sa.CursorResult = session.execute(  # type: ignore
                sa.update(job)
                .where(job.id == candidate.job_id,
                       job.lease_generation == candidate.generation,
                       self._takeable(now, live))
                .values(conductor=owner, lease_generation=generation,
                        lease_expires_at=now + _seconds(lease_time)))
            if result.rowcount != 1:
                return None
        return Lease(owner, generation)

    @transaction
    def claim_own(self, owner: str, lease_time: float) -> dict[str, Lease]:
        """A conductor starting again takes the next generation of the
        unfinished jobs still recorded as its own (oldest first)."""
        now = objects.utcnow()
        job = models.Job
        with self._sessions.begin() as session:
            rows = session.execute(
                sa.select(job.id, job.lease_generation)
                .where(job.conductor == owner, job.state.in_(UNFINISHED))
                .order_by(job.created_at).with_for_update()).all()
            leases = {}
            for row in rows:
                session.execute(
                    sa.update(job).where(job.id == row.id)
                    .values(lease_generation=row.lease_generation + 1,
                            lease_expires_at=now + _seconds(lease_time)))
                leases[row.id] = Lease(owner, row.lease_generation + 1)
            return leases

    @transaction
    def renew(self, owner: str, lease_time: float,
              held: Mapping[str, Lease]) -> list[str]:
        """Extend the leases ``owner`` holds, in one statement; returns
        the ids among ``held`` whose lease is no longer that.

        Only held jobs: one its owner stopped working on (its store
        unreachable for too long) expires, and is taken over.
        """
        if not held:
            return []
        now = objects.utcnow()
        job = models.Job
        with self._sessions.begin() as session:
            session.execute(
                sa.update(job)
                .where(job.conductor == owner, job.id.in_(list(held)),
                       job.state.in_(UNFINISHED))
                .values(lease_expires_at=now + _seconds(lease_time)))
            now_held = {row.id: Lease(row.conductor, row.lease_generation)
                        for row in session.execute(
                            sa.select(job.id, job.conductor,
                                      job.lease_generation)
                            .where(job.id.in_(list(held))))}
        return [job_id for job_id, lease in held.items()
                if now_held.get(job_id) != lease]

    @transaction
    def release(self, owner: str) -> int:
        """Let any conductor take ``owner``'s unfinished jobs now."""
        now = objects.utcnow()
        job = models.Job
        with self._sessions.begin() as session:
            result: sa.CursorResult = session.execute(  # type: ignore
                sa.update(job)
                .where(job.conductor == owner, job.state.in_(UNFINISHED))
                .values(lease_expires_at=now))
            return result.rowcount
