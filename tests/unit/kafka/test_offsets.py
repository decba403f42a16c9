"""The contiguity rule the consumer applies to every record (gateway_app.kafka.offsets)."""

from gateway_app.kafka.offsets import OffsetGuard, Verdict

P = ("topic", 0)


def checks(guard: OffsetGuard, offsets: list[int]) -> list[str]:
    return [guard.check(P, offset).value for offset in offsets]


def test_records_from_the_committed_offset_on_are_processed_once_in_order():
    guard = OffsetGuard()
    guard.start({P: 10})
    assert checks(guard, [10, 11, 12, 11, 12, 13]) == ["process"] * 3 + ["duplicate"] * 2 + ["process"]
    assert guard.expected(P) == 14


def test_without_a_committed_offset_the_first_record_starts_the_partition():
    guard = OffsetGuard()
    guard.start({P: None})
    assert checks(guard, [4, 5, 7]) == ["process", "process", "hole"]


def test_a_hole_is_not_processed_past_until_the_refetch_brings_the_missing_record():
    guard = OffsetGuard()
    guard.start({P: 100})
    # 100..104 delivered; 105..109 never were: 110 reveals the hole (seek back to 105).
    assert checks(guard, [100, 101, 102, 103, 104]) == ["process"] * 5
    assert guard.check(P, 110) is Verdict.HOLE and guard.expected(P) == 105
    # Records already buffered behind 110 are stale; the refetch starts at 105 (older ones are duplicates).
    assert checks(guard, [111, 112, 104, 105, 106]) == ["stale", "stale", "duplicate", "process", "process"]
    assert checks(guard, [107, 108, 109, 110, 111]) == ["process"] * 5
    assert guard.gaps_accepted == 0


def test_a_real_gap_is_accepted_when_the_refetch_starts_after_the_missing_offsets():
    guard = OffsetGuard()
    guard.start({P: 5})
    assert checks(guard, [5, 6]) == ["process", "process"]
    # Offsets 7 and 8 hold transaction markers: the refetch from 7 starts at 9.
    assert checks(guard, [9, 10, 9, 10]) == ["hole", "stale", "process", "process"]
    assert guard.gaps_accepted == 1 and guard.expected(P) == 11


def test_a_new_start_forgets_a_pending_repair():
    guard = OffsetGuard()
    guard.start({P: 0})
    assert checks(guard, [0, 3]) == ["process", "hole"]
    guard.start({P: 1})  # a rebalance: read again from the committed offset
    assert checks(guard, [1, 2, 3]) == ["process"] * 3
    assert guard.counts == {"process": 4, "duplicate": 0, "hole": 1, "stale": 0}


def test_the_livelock_detector_skips_a_partition_without_a_position_instead_of_crashing(monkeypatch):
    from faust.transport.drivers import aiokafka as faust_aiokafka
    from faust.types import TP

    from gateway_app.kafka.consumer import OrderedConsumer

    def no_position(self, now, tp):
        raise AssertionError  # what aiokafka's `position` does for a partition still being reset

    monkeypatch.setattr(faust_aiokafka.Consumer, "verify_event_path", no_position)
    consumer = OrderedConsumer.__new__(OrderedConsumer)  # the method uses no state of its own
    assert consumer.verify_event_path(0.0, TP("t", 0)) is None
