"""The job store: jobs and their (host, image) rows, and nothing else.

Every method is one short transaction. Callers pass and receive the shared
records of :mod:`precache.objects`, never ORM rows. The store decides no
state: it writes what it is given, refuses a move the state table
(:mod:`precache.states`) forbids, and guards its compare-and-swap updates
with the sets of states that table derives.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from precache import exception, objects, states
from precache.db import models
from precache.db.engine import (  # noqa: F401 - the store's public names
    MYSQL,
    READ_ONLY,
    Writer,
    create_engine,
    default_url,
    reader,
    serialize,
)
from precache.db.leases import Lease, fence
from precache.db.retry import transaction


def _to_result(row: models.HostResult) -> objects.HostImageResult:
    return objects.HostImageResult(
        host=row.host, image_id=row.image_id,
        state=objects.HostImageState(row.state), cell=row.cell,
        method=objects.Method(row.method) if row.method else None,
        bytes=row.bytes or 0, seconds=row.seconds or 0.0, reason=row.reason,
        started_at=row.started_at, finished_at=row.finished_at)


_RESULTS: sa.Table = models.HostResult.__table__  # type: ignore[assignment]
_UPDATE_RESULT = (
    sa.update(_RESULTS)
    .where(_RESULTS.c.job_id == sa.bindparam('j'),
           _RESULTS.c.host == sa.bindparam('h'),
           _RESULTS.c.image_id == sa.bindparam('i'))
    .values({name: sa.bindparam(name) for name in (
        'state', 'method', 'bytes', 'seconds', 'reason', 'started_at',
        'finished_at')}))


def _values(found: Iterable[objects.HostImageState]) -> list[str]:
    return [state.value for state in found]


class JobStore:
    """Durable jobs and results on one SQLAlchemy engine."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine = create_engine(self.url)
        self._sessions = Writer(self.engine)
        self._readers = reader(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[orm.Session]:
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def _read(self) -> Iterator[orm.Session]:
        with self._readers.begin() as session:
            yield session

    # -- jobs -------------------------------------------------------------

    @transaction
    def create_job(self, job_id: str, aggregate: str,
                   images: list[objects.ImageSpec],
                   hosts: list[tuple[str, str | None]],
                   options: dict[str, Any], conductor: str | None = None,
                   request_id: str | None = None,
                   dedupe: bool = False,
                   lease_time: float | None = None) -> objects.Job:
        """Record a pending job with one pending row per (host, image).

        With ``lease_time``, ``conductor`` holds the job's lease
        (generation 0) for that many seconds.

        With ``dedupe``, a pending or running job of the aggregate that
        already has rows for every one of these (host, image) pairs is
        returned instead (its id differs from ``job_id``); the check and
        the insert are one transaction under a per-aggregate lock.
        """
        now = objects.utcnow()
        with self._session() as session:
            if dedupe:
                serialize(session, 'jobs:%s' % aggregate)
                found = self._covering_job(
                    session, aggregate, [i.id for i in images],
                    [host for host, _ in hosts])
                if found is not None:
                    return self._existing(session, found)
            session.add(models.Job(
                id=job_id, aggregate=aggregate,
                state=objects.JobState.PENDING.value,
                images=[image.to_dict() for image in images],
                options=options, conductor=conductor,
                request_id=request_id, created_at=now, lease_generation=0,
                lease_expires_at=now + datetime.timedelta(
                    seconds=lease_time) if lease_time else None))
            session.flush()
            session.add_all(
                models.HostResult(job_id=job_id, host=host, cell=cell,
                                  image_id=image.id, bytes=0, seconds=0.0,
                                  state=objects.HostImageState.PENDING.value)
                for host, cell in hosts for image in images)
        return self.get_job(job_id)

    def _existing(self, session: orm.Session, job_id: str) -> objects.Job:
        row = self._job_row(session, job_id)
        counted = self._counts(session, [job_id]).get(job_id)
        return self._to_job(row, None, False, counted)

    @staticmethod
    def _covering_job(session: orm.Session, aggregate: str,
                      image_ids: list[str], hosts: list[str]) -> str | None:
        """The newest active job of ``aggregate`` with every pair."""
        candidates = session.scalars(
            sa.select(models.Job)
            .where(models.Job.aggregate == aggregate,
                   models.Job.state.in_([objects.JobState.PENDING.value,
                                         objects.JobState.RUNNING.value]))
            .order_by(models.Job.created_at.desc(), models.Job.id.desc()))
        wanted = set(image_ids)
        for row in candidates:
            if not wanted <= {i['id'] for i in row.images}:
                continue
            if not hosts:
                return row.id
            covered = session.scalar(
                sa.select(sa.func.count()).select_from(models.HostResult)
                .where(models.HostResult.job_id == row.id,
                       models.HostResult.host.in_(hosts),
                       models.HostResult.image_id.in_(image_ids)))
            if covered == len(hosts) * len(wanted):
                return row.id
        return None

    def _job_row(self, session: orm.Session, job_id: str,
                 lock: bool = False) -> models.Job:
        row = session.get(models.Job, job_id, with_for_update=lock)
        if row is None:
            raise exception.JobNotFound(job=job_id)
        return row

    @transaction
    def get_job(self, job_id: str,
                with_results: bool = True) -> objects.Job:
        with self._read() as session:
            row = self._job_row(session, job_id)
            if not with_results:
                # NOTE: status polls (CLI, API) only need the counts; one
                # GROUP BY instead of loading every (host, image) row.
                counted = self._counts(session, [job_id]).get(job_id)
                return self._to_job(row, None, False, counted)
            results = [_to_result(r) for r in session.scalars(
                sa.select(models.HostResult)
                .where(models.HostResult.job_id == job_id)
                .order_by(models.HostResult.host, models.HostResult.id))]
            return self._to_job(row, results, with_results)

    @transaction
    def find_job_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids starting with ``prefix``, sorted, at most ``limit``: the
        lookup of a short job id (as the CLI's progress bar shows it)."""
        pattern = (prefix.replace('!', '!!').replace('%', '!%')
                   .replace('_', '!_') + '%')
        with self._read() as session:
            return list(session.scalars(
                sa.select(models.Job.id)
                .where(models.Job.id.like(pattern, escape='!'))
                .order_by(models.Job.id).limit(limit)))

    @transaction
    def get_images(self, job_id: str) -> list[objects.ImageSpec]:
        with self._read() as session:
            row = self._job_row(session, job_id)
            return [objects.ImageSpec.from_dict(i) for i in row.images]

    @transaction
    def list_jobs(self, aggregate: str | None = None,
                  state: str | None = None, limit: int = 50,
                  marker: str | None = None) -> list[objects.Job]:
        """Newest first; ``marker`` is the last id of the previous page."""
        with self._read() as session:
            query = sa.select(models.Job).order_by(
                models.Job.created_at.desc(), models.Job.id.desc())
            if aggregate is not None:
                query = query.where(models.Job.aggregate == aggregate)
            if state is not None:
                query = query.where(models.Job.state == state)
            if marker is not None:
                last = self._job_row(session, marker)
                query = query.where(sa.or_(
                    models.Job.created_at < last.created_at,
                    sa.and_(models.Job.created_at == last.created_at,
                            models.Job.id < last.id)))
            rows = list(session.scalars(query.limit(limit)))
            counts = self._counts(session, [r.id for r in rows])
            return [self._to_job(r, None, False, counts.get(r.id))
                    for r in rows]

    def _counts(self, session: orm.Session,
                job_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if not job_ids:
            return found
        query = (sa.select(models.HostResult.job_id,
                           models.HostResult.state,
                           sa.func.count())
                 .where(models.HostResult.job_id.in_(job_ids))
                 .group_by(models.HostResult.job_id, models.HostResult.state))
        # NOTE: .all(): a Result has keys(), so dict() would take it for a
        # mapping. Rows unpack as tuples (Result.tuples() is deprecated).
        hosts = dict(session.execute(
            sa.select(models.HostResult.job_id,
                      sa.func.count(sa.distinct(models.HostResult.host)))
            .where(models.HostResult.job_id.in_(job_ids))
            .group_by(models.HostResult.job_id)).all())
        for job_id, state, count in session.execute(query):
            entry = found.setdefault(job_id, {'hosts': hosts.get(job_id, 0),
                                              'counts': {}})
            entry['counts'][state] = count
        return found

    def _to_job(self, row: models.Job,
                results: list[objects.HostImageResult] | None,
                with_results: bool,
                counted: dict[str, Any] | None = None) -> objects.Job:
        if results is not None:
            counts = objects.count_states(results)
            hosts = len({r.host for r in results})
        else:
            counted = counted or {'hosts': 0, 'counts': {}}
            counts = {s.value: counted['counts'].get(s.value, 0)
                      for s in objects.HostImageState}
            hosts = counted['hosts']
        return objects.Job(
            id=row.id, aggregate=row.aggregate,
            image_ids=[i['id'] for i in row.images],
            image_names={i['id']: i['name'] for i in row.images
                         if i.get('name')},
            state=objects.JobState(row.state), options=row.options or {},
            reason=row.reason, created_at=row.created_at,
            started_at=row.started_at, finished_at=row.finished_at,
            hosts=hosts, counts=counts,
            results=results if with_results else None,
            request_id=row.request_id)

    @transaction
    def set_job_state(self, job_id: str, state: objects.JobState,
                      reason: str | None = None,
                      only_from: Iterable[objects.JobState] | None = None,
                      lease: Lease | None = None) -> bool:
        """Move a job to ``state``; with ``only_from``, only from those;
        with ``lease``, only while it is held (else LeaseLost).

        :returns: whether the job moved (a cancel may have won the race).
        """
        now = objects.utcnow()
        with self._session() as session:
            if lease is not None:
                fence(session, [job_id], {job_id: lease})
            row = self._job_row(session, job_id, lock=True)
            old = objects.JobState(row.state)
            if only_from is not None and old not in set(only_from):
                return False
            states.check_job_transition(old, state)
            row.state = state.value
            if reason is not None:
                row.reason = reason
            if state is objects.JobState.RUNNING and row.started_at is None:
                row.started_at = now
            if state.is_final:
                row.finished_at = now
            return True

    @transaction
    def cancel_job(self, job_id: str, reason: str) -> objects.Job:
        """Skip every host not started yet, in one transaction.

        The rows are the truth a runner checks before it starts a host
        (:meth:`claim_host`), so this works whichever conductor runs the
        job, or none. With no host in flight the job is ``cancelled`` at
        once; otherwise it keeps running with ``reason`` set until its
        runner records the last host and finishes it as cancelled.

        :raises: JobNotFound; Conflict when the job is already final.
        """
        now = objects.utcnow()
        skipped = objects.HostImageState.SKIPPED
        with self._session() as session:
            row = self._job_row(session, job_id, lock=True)
            state = objects.JobState(row.state)
            if state.is_final:
                raise exception.Conflict(
                    reason='job %s is already %s' % (job_id, state.value))
            session.execute(
                sa.update(models.HostResult)
                .where(models.HostResult.job_id == job_id,
                       models.HostResult.state.in_(_values(
                           states.host_sources(skipped,
                                               states.HostEvent.CANCEL))))
                .values(state=skipped.value,
                        reason=states.SkipReason.CANCELLED.value,
                        started_at=now, finished_at=now))
            in_flight = session.scalar(
                sa.select(sa.func.count()).select_from(models.HostResult)
                .where(models.HostResult.job_id == job_id,
                       models.HostResult.state ==
                       objects.HostImageState.RUNNING.value))
            row.reason = reason
            new = objects.JobState.CANCELLED \
                if state is objects.JobState.PENDING or not in_flight \
                else state
            states.check_job_transition(state, new, states.JobEvent.CANCEL)
            if new.is_final:
                row.state = new.value
                row.finished_at = now
        return self.get_job(job_id, with_results=False)

    @transaction
    def runner_of(self, job_id: str) -> str | None:
        """The conductor running or about to run a job; None once final.

        :raises: JobNotFound
        """
        with self._read() as session:
            row = self._job_row(session, job_id)
            return None if objects.JobState(row.state).is_final \
                else row.conductor

    @transaction
    def unfinished_jobs(self, conductor: str) -> list[str]:
        """Ids of this conductor's jobs that never reached a final state."""
        with self._session() as session:
            return list(session.scalars(
                sa.select(models.Job.id)
                .where(models.Job.conductor == conductor,
                       models.Job.state.in_(
                           [objects.JobState.PENDING.value,
                            objects.JobState.RUNNING.value]))
                .order_by(models.Job.created_at)))

    # -- host results -----------------------------------------------------

    def record_results(self, job_id: str,
                       results: Iterable[objects.HostImageResult]) -> None:
        """Overwrite the rows of these (host, image) pairs of a job."""
        self.record_progress([], [(job_id, list(results))])

    def record_progress(self, claims: Iterable[tuple[str, str]],
                        results: Iterable[
                            tuple[str, list[objects.HostImageResult]]],
                        leases: Mapping[str, Lease] | None = None
                        ) -> list[tuple[str, str]]:
        """Claims (:meth:`claim_host`), then results, in one transaction.

        ``claims`` are (job id, host); ``results`` (job id, rows to
        overwrite). Returns the claims a cancel had already skipped.
        ``leases``: the lease each job's writes need; when one is no
        longer held, nothing is written (LeaseLost).
        """
        results = [(job_id, list(rows)) for job_id, rows in results]
        for _, rows in results:
            for row in rows:
                states.check_host_result(row.state)
        # NOTE: lists: a transaction run again must see them whole.
        return self._record_progress(
            list(claims), results, dict(leases or {}))

    @transaction
    def _record_progress(self, claims: list[tuple[str, str]],
                         results: list[
                             tuple[str, list[objects.HostImageResult]]],
                         leases: dict[str, Lease]
                         ) -> list[tuple[str, str]]:
        with self._session() as session:
            fence(session, [c[0] for c in claims] + [r[0] for r in results],
                  leases)
            claimed = self._claim(session, claims)
            lost = [claim for claim in claims if claim not in claimed]
            params = [{'j': job_id, 'h': r.host, 'i': r.image_id,
                       'state': r.state.value,
                       'method': r.method.value if r.method else None,
                       'bytes': r.bytes, 'seconds': r.seconds,
                       'reason': r.reason, 'started_at': r.started_at,
                       'finished_at': r.finished_at}
                      for job_id, rows in results for r in rows]
            if params:
                # NOTE: Core, not ORM: one executemany for every row.
                session.connection().execute(_UPDATE_RESULT, params)
        return lost

    @transaction
    def set_host_state(self, job_id: str, host: str,
                       state: objects.HostImageState,
                       only_from: objects.HostImageState | None = None,
                       reason: str | None = None,
                       lease: Lease | None = None) -> int:
        """Move the image rows of one host that may move to ``state``
        (only those in ``only_from``, if given); returns how many.

        :raises: InvalidStateTransition when ``only_from`` may not move
            to ``state``.
        """
        if only_from is not None:
            states.check_host_transition(only_from, state)
        with self._session() as session:
            if lease is not None:
                fence(session, [job_id], {job_id: lease})
            query = (sa.update(models.HostResult)
                     .where(models.HostResult.job_id == job_id,
                            models.HostResult.host == host)
                     .values(state=state.value, reason=reason))
            if only_from is not None:
                query = query.where(
                    models.HostResult.state == only_from.value)
            else:
                query = query.where(models.HostResult.state.in_(
                    _values(states.host_sources(state))))
            result: sa.CursorResult = session.execute(query)  # type: ignore
            return result.rowcount

    @transaction
    def skip_hosts(self, job_id: str, hosts: list[str], reason: str,
                   lease: Lease | None = None) -> int:
        """Skip the unfinished rows of ``hosts`` (not started, or left
        running by a conductor that died); returns how many."""
        now = objects.utcnow()
        skipped = objects.HostImageState.SKIPPED
        with self._session() as session:
            if lease is not None:
                fence(session, [job_id], {job_id: lease})
            result: sa.CursorResult = session.execute(  # type: ignore
                sa.update(models.HostResult)
                .where(models.HostResult.job_id == job_id,
                       models.HostResult.host.in_(hosts),
                       models.HostResult.state.in_(_values(
                           states.host_sources(skipped,
                                               states.HostEvent.LEFT))))
                .values(state=skipped.value,
                        reason=reason, started_at=now, finished_at=now))
            return result.rowcount

    def claim_host(self, job_id: str, host: str) -> bool:
        """Mark a host's rows running unless a cancel skipped them first.

        Rows left ``running`` by a conductor that died are claimed again
        when the job resumes.
        """
        return not self.record_progress([(job_id, host)], [])

    @staticmethod
    def _claim(session: orm.Session, claims: list[tuple[str, str]]
               ) -> set[tuple[str, str]]:
        """Mark the claimed hosts' unfinished rows running; the claims
        that found such rows. One statement per job and 500 hosts."""
        hosts_of: dict[str, list[str]] = {}
        for job_id, host in claims:
            hosts_of.setdefault(job_id, []).append(host)
        columns = _RESULTS.c
        running_state = objects.HostImageState.RUNNING
        claimable = _values(states.host_sources(running_state,
                                                states.HostEvent.CLAIM))
        connection = session.connection()
        returning = connection.dialect.update_returning
        claimed: set[tuple[str, str]] = set()
        for job_id, hosts in hosts_of.items():
            for start in range(0, len(hosts), 500):
                unfinished = (
                    columns.job_id == job_id,
                    columns.host.in_(hosts[start:start + 500]),
                    columns.state.in_(claimable))
                running = {'state': running_state.value, 'reason': None}
                if returning:
                    found = connection.execute(
                        sa.update(_RESULTS).where(*unfinished)
                        .values(running).returning(columns.host)).all()
                else:
                    # NOTE: MySQL/MariaDB have no UPDATE ... RETURNING: read
                    # the rows under a row lock, then update those.
                    found = connection.execute(
                        sa.select(columns.id, columns.host)
                        .where(*unfinished).with_for_update()).all()
                    if found:
                        connection.execute(
                            sa.update(_RESULTS)
                            .where(columns.id.in_([row.id for row in found]))
                            .values(running))
                claimed.update((job_id, row.host) for row in found)
        return claimed

    @transaction
    def resident_images(self, hosts: list[str]
                        ) -> list[tuple[str, objects.HostImageResult]]:
        """(job id, result) of every image resident on ``hosts``.

        Resident = the latest attempt on that (host, image) ended cached
        or existing. ``skipped`` rows are no attempt (the agent was down or
        the job cancelled), so they neither prove nor disprove residency.
        """
        if not hosts:
            return []
        table = models.HostResult
        attempted = [objects.HostImageState.CACHED.value,
                     objects.HostImageState.EXISTING.value,
                     objects.HostImageState.ERROR.value,
                     objects.HostImageState.UNSUPPORTED.value]
        ranked = (
            sa.select(table.id, table.job_id, table.state,
                      sa.func.row_number().over(
                          partition_by=(table.host, table.image_id),
                          order_by=(table.finished_at.desc(),
                                    table.id.desc())).label('rank'))
            .where(table.host.in_(hosts), table.state.in_(attempted))
            .subquery())
        with self._read() as session:
            rows = session.execute(
                sa.select(table, ranked.c.job_id)
                .join(ranked, ranked.c.id == table.id)
                .where(ranked.c.rank == 1,
                       ranked.c.state.in_(attempted[:2]))
                .order_by(table.host, table.image_id)).all()
            return [(job_id, _to_result(row)) for row, job_id in rows]
