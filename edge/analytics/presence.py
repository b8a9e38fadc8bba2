"""Debounced in/out state of tracks in one polygon, shared by zones, queues and shelves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.analytics.geometry import points_in_polygon, polygon_edges
from edge.analytics.types import FrameTracks


@dataclass(slots=True)
class _State:
    inside: bool = False
    pending_since: float | None = None  # first time the raw state differed
    entered_at: float = 0.0
    last_seen: float = 0.0


@dataclass(frozen=True, slots=True)
class Visit:
    """A finished stay of one track in the polygon."""

    track_id: int
    entered_at: float
    exited_at: float

    @property
    def dwell_s(self) -> float:
        """Seconds inside."""
        return self.exited_at - self.entered_at


class Presence:
    """Who is inside a polygon; a change of state holds only after its debounce time.

    Entry and exit times are back-dated to the first frame of the change, so dwell is exact to
    one frame. Lost (occluded) tracks keep their state until the tracker ends them.
    """

    def __init__(
        self, polygon: Sequence[Sequence[float]], *, enter_s: float, exit_s: float
    ) -> None:
        self.polygon = polygon
        self._edges = polygon_edges(polygon)
        self.enter_s = enter_s
        self.exit_s = exit_s
        self._states: dict[int, _State] = {}
        self.inside_count = 0

    def update(self, frame: FrameTracks) -> tuple[list[float], list[Visit]]:
        """Advance one frame; returns (entry times of tracks that entered, visits that ended)."""
        raw = points_in_polygon(frame.points, self._edges).tolist()
        entered: list[float] = []
        ended: list[Visit] = []
        t = frame.t
        for tid, now_in in zip(frame.ids.tolist(), raw, strict=True):
            st = self._states.get(tid)
            if st is None:
                if not now_in:
                    continue  # tracks never inside cost nothing
                st = self._states[tid] = _State()
            st.last_seen = t
            if now_in == st.inside:
                st.pending_since = None
                continue
            if st.pending_since is None:
                st.pending_since = t
            if t - st.pending_since >= (self.enter_s if now_in else self.exit_s):
                self._flip(tid, st, entered, ended)
        for tid in frame.removed:
            st = self._states.pop(tid, None)
            if st is not None and st.inside:
                self.inside_count -= 1
                end = st.pending_since if st.pending_since is not None else st.last_seen
                ended.append(Visit(tid, st.entered_at, end))
        return entered, ended

    def _flip(self, tid: int, st: _State, entered: list[float], ended: list[Visit]) -> None:
        when = st.pending_since if st.pending_since is not None else st.last_seen
        st.pending_since = None
        if st.inside:
            st.inside = False
            self.inside_count -= 1
            ended.append(Visit(tid, st.entered_at, when))
            del self._states[tid]
        else:
            st.inside = True
            st.entered_at = when
            self.inside_count += 1
            entered.append(when)

    @property
    def tracked(self) -> int:
        """Tracks with state here (for memory checks)."""
        return len(self._states)
