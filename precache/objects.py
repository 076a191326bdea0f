"""Status enums and the small records shared by store, RPC, CLI and logs.

Everything here converts to and from plain JSON-able dicts, because that is
what crosses the message bus and what ``--json`` prints.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections import Counter
from collections.abc import Iterable
from typing import Any


class JobState(str, enum.Enum):
    PENDING = 'pending'      # recorded, not yet started by a conductor
    RUNNING = 'running'      # hosts are being called
    DONE = 'done'            # every host has a final result
    FAILED = 'failed'        # the job could not run to its end (reason)
    CANCELLED = 'cancelled'  # stopped on request; unstarted hosts skipped
    EXPIRED = 'expired'      # its window closed; unstarted hosts skipped

    @property
    def is_final(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)


class HostImageState(str, enum.Enum):
    PENDING = 'pending'          # not yet sent to the host
    RUNNING = 'running'          # the host is working on it
    CACHED = 'cached'            # fetched now
    EXISTING = 'existing'        # was resident; touched
    ERROR = 'error'              # failed, with a reason
    UNSUPPORTED = 'unsupported'  # the agent has no backend/store for it
    SKIPPED = 'skipped'          # never attempted (agent down, ...)

    @property
    def is_final(self) -> bool:
        return self not in (HostImageState.PENDING, HostImageState.RUNNING)

    @property
    def is_resident(self) -> bool:
        return self in (HostImageState.CACHED, HostImageState.EXISTING)


#: The order counts are printed in, everywhere (logs, CLI, summaries).
FINAL_STATES = (HostImageState.CACHED, HostImageState.EXISTING,
                HostImageState.ERROR, HostImageState.UNSUPPORTED,
                HostImageState.SKIPPED)


class Method(str, enum.Enum):
    """How the bytes of a cached image arrived."""

    RBD_CLONE = 'rbd-clone'
    RBD_EXPORT = 'rbd-export'
    GLANCE_HTTP = 'glance-http'
    FILE = 'file'


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_time(value: Any) -> datetime.datetime | None:
    if value is None or isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(value)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What an agent needs to fetch and verify one image.

    The conductor builds it once from the image service, so agents never
    ask the image service for metadata themselves.
    """

    id: str
    size: int | None = None
    name: str | None = None
    disk_format: str | None = None
    checksum: str | None = None        # MD5, Glance's legacy field
    os_hash_algo: str | None = None    # e.g. sha512
    os_hash_value: str | None = None
    locations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data['locations'] = list(self.locations)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs['locations'] = tuple(kwargs.get('locations') or ())
        return cls(**kwargs)


@dataclasses.dataclass
class HostImageResult:
    """The outcome of one image on one host: one row of a job."""

    host: str
    image_id: str
    state: HostImageState
    cell: str | None = None
    method: Method | None = None
    bytes: int = 0
    seconds: float = 0.0
    reason: str | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {'host': self.host, 'image_id': self.image_id,
                'state': self.state.value, 'cell': self.cell,
                'method': self.method.value if self.method else None,
                'bytes': self.bytes, 'seconds': round(self.seconds, 3),
                'reason': self.reason,
                'started_at': _iso(self.started_at),
                'finished_at': _iso(self.finished_at)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostImageResult:
        method = data.get('method')
        return cls(host=data['host'], image_id=data['image_id'],
                   state=HostImageState(data['state']),
                   cell=data.get('cell'),
                   method=Method(method) if method else None,
                   bytes=int(data.get('bytes') or 0),
                   seconds=float(data.get('seconds') or 0.0),
                   reason=data.get('reason'),
                   started_at=_parse_time(data.get('started_at')),
                   finished_at=_parse_time(data.get('finished_at')))


def count_states(results: Iterable[HostImageResult]) -> dict[str, int]:
    """Counts per state, every state present, in the usual order."""
    counter = Counter(r.state for r in results)
    return {state.value: counter.get(state, 0)
            for state in (*FINAL_STATES, HostImageState.PENDING,
                          HostImageState.RUNNING)}


def summary_text(counts: dict[str, int]) -> str:
    """``12 cached, 3 existing, 1 error, 0 unsupported, 2 skipped``."""
    return ', '.join('%d %s' % (counts.get(s.value, 0), s.value)
                     for s in FINAL_STATES)


@dataclasses.dataclass
class Job:
    """One request: make these images resident on this aggregate."""

    id: str
    aggregate: str
    image_ids: list[str]
    state: JobState
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    reason: str | None = None
    created_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    hosts: int = 0
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    results: list[HostImageResult] | None = None
    #: id -> name, for the images the image service named when the job
    #: was accepted; an image without a name has no entry.
    image_names: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The id of the request that asked for the job, as the job store
    #: recorded it: the global id of the job's log lines
    #: (precache.context.for_job). Not in its dict, so neither on the
    #: bus nor in the API.
    request_id: str | None = None

    @property
    def seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {'id': self.id, 'aggregate': self.aggregate,
                'image_ids': list(self.image_ids),
                'image_names': dict(self.image_names),
                'state': self.state.value, 'options': dict(self.options),
                'reason': self.reason,
                'created_at': _iso(self.created_at),
                'started_at': _iso(self.started_at),
                'finished_at': _iso(self.finished_at),
                'hosts': self.hosts, 'counts': dict(self.counts)}
        if self.results is not None:
            data['results'] = [r.to_dict() for r in self.results]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        results = data.get('results')
        return cls(id=data['id'], aggregate=data['aggregate'],
                   image_ids=list(data['image_ids']),
                   image_names=dict(data.get('image_names') or {}),
                   state=JobState(data['state']),
                   options=dict(data.get('options') or {}),
                   reason=data.get('reason'),
                   created_at=_parse_time(data.get('created_at')),
                   started_at=_parse_time(data.get('started_at')),
                   finished_at=_parse_time(data.get('finished_at')),
                   hosts=int(data.get('hosts') or 0),
                   counts=dict(data.get('counts') or {}),
                   results=None if results is None else
                   [HostImageResult.from_dict(r) for r in results])


def aggregates_named(properties: dict[str, Any], tags: Iterable[Any],
                     image_property: str, tag_prefix: str
                     ) -> tuple[str, ...]:
    """The aggregates an image says it belongs on: its property (a comma
    list) then its tags that start with ``tag_prefix``, each once.

    One rule for the consumer (notifications) and the conductor
    (reconcile), so both agree on what an image asks for.
    """
    names: list[str] = []
    value = properties.get(image_property)
    if isinstance(value, str):
        names.extend(value.split(','))
    if tag_prefix:
        names.extend(tag[len(tag_prefix):] for tag in tags
                     if isinstance(tag, str) and tag.startswith(tag_prefix))
    return tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
