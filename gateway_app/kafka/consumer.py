"""faust's Kafka consumer, made to deliver each partition in order and never past a record it skipped.

faust-streaming 0.15 loses and reorders records around a rebalance (reproduced by the fault suite):
- after a rebalance it resumes the stream partitions and the flow *before* it seeks them to their
  committed offsets, and resuming flow control afterwards empties the agents' queues: records delivered
  in between are dropped from the queues, and the seek does not bring back those of a partition with no
  committed offset (aiokafka only seeks when the committed offset is above 0);
- its "read offset" filter drops every refetched record below the last offset it handed out, and a
  record handed out from a batch fetched before the seek moves that offset past the refetched ones;
- on any jump in offsets it registers a "gap" that the commit then treats as processed.
So this consumer (1) stops the flow before seeking, so nothing is delivered between the seek and the
point where faust resumes flow control, (2) seeks partitions without a committed offset to their start,
(3) switches the read-offset filter (and with it the gaps) off, and (4) gives the agents `admit`, which
applies the contiguity rule of `gateway_app.kafka.offsets` to every record and repairs holes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from gateway_app.kafka.offsets import OffsetGuard, Verdict

log = logging.getLogger(__name__)


class _NoReadOffsets(dict):
    """faust's per-partition read offsets, switched off: every lookup is "nothing read yet", so faust's
    fetch loop neither drops refetched records nor registers offset gaps. `OffsetGuard` decides instead."""

    def __getitem__(self, tp: Any) -> None:
        return None

    def __setitem__(self, tp: Any, offset: Any) -> None:
        pass

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass


class OrderedConsumer(faust_aiokafka.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _NoReadOffsets()
        self.guard = OffsetGuard()

    async def perform_seek(self) -> None:
        # Nothing may be handed to the agents from here until faust resumes the flow, which it does
        # only after it resumed (and so emptied) the agents' queues.
        self.stop_flow()
        committed = await self.seek_to_committed()
        streams = {tp: offset for tp, offset in committed.items() if not self._is_changelog_tp(tp)}
        from_start = [tp for tp, offset in streams.items() if not offset]
        if from_start:
            try:
                await self._thread.seek_to_beginning(*from_start)
            except IllegalStateError as exc:  # revoked meanwhile: the next rebalance seeks again
                log.warning("consumer.seek_skipped partitions=%d reason=%s", len(from_start), exc)
        # faust's own bookkeeping of committed offsets (0 counts as none), which its commits rely on.
        self._committed_offset.update({tp: offset or None for tp, offset in streams.items() if offset is not None})
        self.guard.start({tp: offset or None for tp, offset in streams.items()})

    async def _drain_messages(self, fetcher: Any) -> None:
        """Hand every fetched record to faust's conductor, in order.

        faust's own loop races each delivery against the flow being suspended, which costs four futures
        per record (a tenth of a worker's CPU, and most of a table restore). Here a delivery is simply
        awaited: one that waited across a rebalance reaches its agent while the flow is stopped or with
        the old generation id, and `admit` drops it. faust's read offsets and gaps are gone with it.
        """
        deliver = self.callback
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                changelogs = self.app.tables.changelog_topics
                async for tp, message in self.getmany(timeout=1.0):
                    await deliver(message)
                    if tp.topic in changelogs:
                        continue  # table rows start no work: restore them at full speed
                    # Two turns of the event loop per record: the agent takes the record, and the work it
                    # starts takes its first step, before the next record comes in. Under load that keeps
                    # calls already in flight ahead of new intake (one turn: p50 of a healthy provider's
                    # replies in the provider-storm scenario 45-97 ms; two: 15-19 ms).
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                await asyncio.sleep(0)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def admit(self, message: Any) -> bool:
        """Whether an agent should process this record now; holes are repaired before returning."""
        if not self.flow_active or message.generation_id != self.app.consumer_generation_id:
            # Fetched before a rebalance, or handed over while one runs (a delivery that was waiting for
            # room in a queue completes after faust emptied the queues): redelivered from the commit.
            self.guard.counts[Verdict.STALE.value] += 1
            return False
        tp = message.tp
        verdict = self.guard.check(tp, message.offset)
        if verdict is Verdict.HOLE:
            await self._repair(tp, message.offset)
        return verdict is Verdict.PROCESS

    async def _repair(self, tp: TP, offset: int) -> None:
        expected = self.guard.expected(tp)
        log.warning("consumer.hole topic=%s partition=%s expected=%s got=%s: seeking back",
                    tp.topic, tp.partition, expected, offset)
        await self.seek_wait({tp: expected})

    def verify_event_path(self, now: float, tp: TP) -> None:
        """faust's livelock detector (a diagnostic that only logs) reads aiokafka's position of every
        assigned partition; a partition being reset to its start (`perform_seek` above) has none yet, and
        aiokafka asserts on it, which crashed the worker (seen once in CI, two workers starting at once).
        Such a partition has nothing to verify until its position is known."""
        try:
            super().verify_event_path(now, tp)
        except AssertionError:
            log.debug("consumer.verify_skipped topic=%s partition=%s: no position yet", tp.topic, tp.partition)

    def delivery_counts(self) -> Mapping[str, int]:
        return {**self.guard.counts, "gaps_accepted": self.guard.gaps_accepted}
