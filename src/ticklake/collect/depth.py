"""Keeping a local order book in sync with Binance's diff-depth stream (pure logic, no I/O).

Binance documents how to manage a local book (spot "How to manage a local order book
correctly", USD-M "How to manage a local order book correctly"):

1. Open the stream and buffer the events; note the ``U`` of the first one.
2. Get a snapshot from ``/depth``. If its ``lastUpdateId`` is below that first ``U``,
   the snapshot is older than the buffer: get another.
3. Drop buffered events whose ``u`` is ≤ ``lastUpdateId`` (USD-M: ``u`` < ``lastUpdateId``).
4. The first remaining event must straddle the snapshot: spot ``U ≤ lastUpdateId + 1 ≤ u``,
   USD-M ``U ≤ lastUpdateId ≤ u``. Otherwise events are missing: start again.
5. From then on each event must follow the previous one: spot ``U == previous u + 1``,
   USD-M ``pu == previous u``. Otherwise the book is out of sync: start again.
6. A quantity of 0 removes the level; an update for a level not in the book is applied.

:class:`DepthSync` does exactly that. Events keep being buffered while a snapshot is
awaited, so none are dropped in the switch; the buffer is bounded (``max_buffer``, then
the oldest events go and the loss is reported as a gap). The collector writes every event
and every snapshot to the raw parts whatever the state, so the lake can replay the book;
this class decides when a snapshot is needed and reports each gap it saw.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DepthGap:
    """Events lost between ``from_id`` and ``to_id`` (update ids), and why."""

    from_id: int | None
    to_id: int | None
    reason: str


@dataclass
class DepthSync:
    """The book of one symbol and the state of its sync with the stream."""

    futures: bool = False  # USD-M rules (pu) instead of spot's (U == u + 1)
    max_buffer: int = 50_000
    bids: dict[str, float] = field(default_factory=dict)
    asks: dict[str, float] = field(default_factory=dict)
    last_u: int | None = None
    synced: bool = False
    buffer: deque[dict[str, Any]] = field(default_factory=deque)
    gaps: list[DepthGap] = field(default_factory=list)
    resyncs: int = 0
    dropped_from_buffer: int = 0
    #: synced from a snapshot with no buffered event left: the next one may straddle it
    _straddle: bool = False

    @property
    def needs_snapshot(self) -> bool:
        """True when the book waits for a snapshot (and buffers events meanwhile)."""
        return not self.synced

    # ---------------------------------------------------------------- events
    def on_event(self, event: dict[str, Any]) -> DepthGap | None:
        """Take one diff event; returns the gap it revealed (the book then needs a
        snapshot), else None."""
        if not self.synced:
            self._buffer(event)
            return None
        if self._straddle:
            assert self.last_u is not None
            target = self.last_u if self.futures else self.last_u + 1
            if int(event["u"]) < target:
                return None  # wholly inside the snapshot already
            if int(event["U"]) <= target:
                self._straddle = False
                self._apply(event)
                return None
        if self._follows(event):
            self._apply(event)
            return None
        assert self.last_u is not None
        gap = DepthGap(self.last_u + 1, int(event["U"]) - 1, self._break_reason(event))
        self._lose_sync(gap)
        self._buffer(event)
        return gap

    def lose_sync(self, reason: str) -> DepthGap:
        """The stream broke (a reconnect): what arrives next needs a fresh snapshot."""
        gap = DepthGap(None if self.last_u is None else self.last_u + 1, None, reason)
        self._lose_sync(gap)
        return gap

    def _lose_sync(self, gap: DepthGap) -> None:
        self.gaps.append(gap)
        self.synced = False
        self._straddle = False
        self.buffer.clear()

    def _buffer(self, event: dict[str, Any]) -> None:
        if len(self.buffer) >= self.max_buffer:
            self.buffer.popleft()
            self.dropped_from_buffer += 1
        self.buffer.append(event)

    def _follows(self, event: dict[str, Any]) -> bool:
        if self.last_u is None:
            return False
        if self.futures:
            return int(event["pu"]) == self.last_u
        return int(event["U"]) == self.last_u + 1

    def _break_reason(self, event: dict[str, Any]) -> str:
        if self.futures:
            return f"sequence break: pu {event['pu']} != previous u {self.last_u}"
        return f"sequence break: U {event['U']} != previous u {self.last_u} + 1"

    def _apply(self, event: dict[str, Any]) -> None:
        for book, levels in ((self.bids, event.get("b", ())), (self.asks, event.get("a", ()))):
            for price, qty in levels:
                if float(qty) == 0.0:
                    book.pop(price, None)
                else:
                    book[price] = float(qty)
        self.last_u = int(event["u"])

    # -------------------------------------------------------------- snapshot
    def on_snapshot(self, snapshot: dict[str, Any]) -> str:
        """Take a ``/depth`` answer; returns ``"synced"``, ``"stale"`` (get a newer one:
        it predates the buffer) or ``"missing"`` (events between the snapshot and the
        buffer are lost: get a newer one once more events are buffered)."""
        last_id = int(snapshot["lastUpdateId"])
        if self.buffer and last_id < int(self.buffer[0]["U"]) - (0 if self.futures else 1):
            return "stale"
        # Drop what the snapshot already holds.
        while self.buffer and (
            int(self.buffer[0]["u"]) < last_id
            if self.futures
            else int(self.buffer[0]["u"]) <= last_id
        ):
            self.buffer.popleft()
        if self.buffer:
            first = self.buffer[0]
            target = last_id if self.futures else last_id + 1
            if not int(first["U"]) <= target <= int(first["u"]):
                return "missing"
        self.bids = {p: float(q) for p, q in snapshot["bids"] if float(q) != 0.0}
        self.asks = {p: float(q) for p, q in snapshot["asks"] if float(q) != 0.0}
        self.last_u = last_id
        pending = list(self.buffer)
        self.buffer.clear()
        self.synced = True
        self._straddle = not pending
        self.resyncs += 1
        for i, event in enumerate(pending):
            # The first straddling event is applied whatever its U/pu (documented rule 4).
            if i == 0 or self._follows(event):
                self._apply(event)
            else:
                gap = DepthGap(self.last_u + 1, int(event["U"]) - 1, self._break_reason(event))
                self._lose_sync(gap)
                for rest in pending[i:]:
                    self._buffer(rest)
                return "missing"
        return "synced"

    def top(self, levels: int = 1000) -> dict[str, list[tuple[float, float]]]:
        """The book as sorted (price, qty) lists, best first (tests compare it)."""
        bids = sorted(((float(p), q) for p, q in self.bids.items()), reverse=True)[:levels]
        asks = sorted((float(p), q) for p, q in self.asks.items())[:levels]
        return {"bids": bids, "asks": asks}
