"""Table restore that takes changelog rows in batches.

faust-streaming 0.15's recovery loop takes one changelog row at a time: a new task (`asyncio.wait_for`)
per row, and after every row it recomputes the remaining offsets of every changelog partition to decide
whether recovery ended. That bounds a cold restore at a few thousand rows a second. This loop waits for
the first row with the same timeout, then takes every row already queued (up to `BATCH_MAX`) and does
the bookkeeping once per batch. What happens to a row is unchanged: kept only if its offset is past
the last one seen for its partition, buffered per table, written when the table's buffer is full or
recovery ends, and the end of recovery is signalled as soon as no active partition has rows left.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import Any

import faust
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP, EventT
from faust.utils.tracing import finish_span
from mode import Service

log = logging.getLogger(__name__)

BATCH_MAX = 10_000  # rows taken from the queue before the loop yields to the event loop
IDLE_TIMEOUT_S = 5.0  # as faust's: an empty wait this long re-checks whether recovery has ended


class BatchRecovery(Recovery):
    # The last restore of active partitions, for /health: rows written and how long it took.
    _restore_rows = 0
    _restore_started_at: float | None = None
    _restore_seconds: float | None = None

    def restore_stats(self) -> dict[str, Any]:
        running = self.in_recovery and self._restore_started_at is not None
        seconds = monotonic() - self._restore_started_at if running else self._restore_seconds
        rows = self._restore_rows
        return {"in_progress": running, "rows": rows, "seconds": None if seconds is None else round(seconds, 3),
                "rows_per_second": round(rows / seconds) if rows and seconds else None}

    def _set_recovery_started(self) -> None:
        super()._set_recovery_started()
        self._restore_rows, self._restore_started_at, self._restore_seconds = 0, monotonic(), None

    def _set_recovery_ended(self) -> None:
        super()._set_recovery_ended()
        if self._restore_started_at is not None:
            self._restore_seconds = monotonic() - self._restore_started_at
            self._restore_started_at = None

    @Service.task
    async def _slurp_changelogs(self) -> None:
        queue = self.tables.changelog_queue
        idle_waits = 0
        while not self.should_stop:
            try:
                self.signal_recovery_end.clear()
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=IDLE_TIMEOUT_S)
                except asyncio.TimeoutError:
                    idle_waits += 1
                    if self.should_stop:
                        return
                    await self._after_rows(idle_waits)
                    continue
                idle_waits = 0
                batch = [first]
                while len(batch) < BATCH_MAX and not queue.empty():
                    batch.append(queue.get_nowait())
                await self._take(batch)
                await self._after_rows(idle_waits)
            except Exception as exc:  # as faust's loop: an error is logged, the restore goes on
                log.warning("recovery.error %r", exc)

    async def _take(self, batch: list[EventT]) -> None:
        started = monotonic()
        actives = 0
        for event in batch:
            try:
                actives += await self._take_row(event, started)
            except Exception as exc:  # as faust's loop: a bad row is logged, the rest of the batch goes on
                log.warning("recovery.error topic=%s offset=%s %r", event.message.topic, event.message.offset, exc)
        if actives:
            self._sample_processing_time((monotonic() - started) / len(batch), actives)

    async def _take_row(self, event: EventT, now: float) -> int:
        """Buffer one row if it is new for its partition; 1 if the partition is active, else 0."""
        tp = event.message.tp
        if tp in self.active_tps:
            offsets, size_attr, active = self.active_offsets, "recovery_buffer_size", 1
            self._active_events_received_at[tp] = now
        elif tp in self.standby_tps:
            offsets, size_attr, active = self.standby_offsets, "standby_buffer_size", 0
            self._standby_events_received_at[tp] = now
        else:  # revoked while its rows were queued
            return 0
        seen = offsets.get(tp)
        offset = event.message.offset
        if seen is not None and offset <= seen:
            return active
        offsets[tp] = offset
        self._restore_rows += active
        table = self.tp_to_table[tp]
        buffer = self.buffers[table]
        buffer.append(event)
        await table.on_changelog_event(event)
        if len(buffer) >= self._buffer_size(tp, table, size_attr):
            table.apply_changelog_batch(buffer)
            buffer.clear()
            self._last_flush_at = monotonic()
        return active

    def _buffer_size(self, tp: TP, table: Any, size_attr: str) -> int:
        size = self.buffer_sizes.get(tp)
        if size is None:
            size = self.buffer_sizes[tp] = getattr(table, size_attr)
        return size

    def _sample_processing_time(self, per_row: float, rows: int) -> None:
        # faust estimates the time left from the last samples of per-row processing time.
        times = self._processing_times
        times.extend([per_row] * min(rows, self.num_samples_required_for_estimate))
        while len(times) > self.num_samples_required_for_estimate:
            times.popleft()
        self._last_active_event_processed_at = monotonic()

    async def _after_rows(self, idle_waits: int) -> None:
        if idle_waits > 1 and self.app.in_transaction:
            await self._skip_aborted_transactions()
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            self.signal_recovery_end.set()
        standby_ready = self._standbys_span is None and self.tables.standbys_ready
        if not standby_ready and not self.standby_remaining_total():
            if self._standbys_span is not None:
                finish_span(self._standbys_span)
                self._standbys_span = None
            self.tables.on_standbys_ready()

    async def _skip_aborted_transactions(self) -> None:
        """A changelog that ends in an aborted transaction never delivers its last offsets: once the
        consumer's position has passed the high-water mark, the partition is up to date."""
        for tp, highwater in self.active_highwaters.items():
            offset = self.active_offsets.get(tp)
            if highwater is None or offset is None or offset >= highwater:
                continue
            position = await self.app.consumer.position(tp)
            if position is not None and position >= highwater:
                log.info("recovery.aborted_transaction_skipped topic=%s partition=%s", tp.topic, tp.partition)
                self.active_offsets[tp] = highwater


class GatewayTableManager(TableManager):
    """faust's table manager with the batch restore loop, reading changelogs as raw bytes."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = BatchRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery

    async def _update_channels(self) -> None:
        # faust decodes every changelog row with the table's serializers (JSON), and the RocksDB store
        # then writes the row's raw bytes and drops what was decoded: a third of a restore's CPU. The
        # channels that feed the restore read rows as bytes; writes to the changelog are unchanged.
        for table in self.values():
            if table not in self._channels:
                raw = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
                channel = table.changelog_topic.clone(queue=self.changelog_queue, is_iterator=True, schema=raw,
                                                      key_type=bytes, value_type=bytes,
                                                      key_serializer="raw", value_serializer="raw")
                self.app.topics.add(channel)
                self._channels[table] = channel
        await super()._update_channels()
