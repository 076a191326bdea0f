"""A clock tests set by hand (JobRunner and Scheduler take a ``clock``)."""

from __future__ import annotations

import datetime

from precache import objects


class Clock:
    def __init__(self, now: datetime.datetime | None = None) -> None:
        self.now = now or objects.utcnow()

    def __call__(self) -> datetime.datetime:
        return self.now
