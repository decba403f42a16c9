"""`--from` / `--to` as an operator writes them, and the offsets they mean in each partition."""

from __future__ import annotations

import pytest

from gateway_app.replay.ranges import (
    OffsetBound,
    PartitionRange,
    TimeBound,
    describe,
    parse_bound,
    parse_time,
    plan,
    resume_points,
    unknown_partitions,
)

T = parse_time("2026-11-26T10:00:00Z")


def test_bounds_are_offsets_for_every_partition_offsets_per_partition_or_times():
    assert parse_bound("1200") == OffsetBound(every=1200)
    assert parse_bound("0:1200, 3:88") == OffsetBound(per_partition={0: 1200, 3: 88})
    assert parse_bound("2026-11-26T10:00:00Z") == TimeBound(T)
    assert parse_bound("2026-11-26T11:00:00+01:00") == TimeBound(T)
    assert parse_bound("2026-11-26T10:00:00") == TimeBound(T)  # no zone: UTC
    assert parse_bound("2026-11-26") == TimeBound(parse_time("2026-11-26T00:00:00Z"))
    assert describe(TimeBound(T)) == "2026-11-26T10:00:00.000Z" and describe(None) == "now"
    assert describe(parse_bound("0:5,1:7")) == "0:5,1:7" and describe(parse_bound("9")) == "offset 9"


@pytest.mark.parametrize("text", ["yesterday", "0:1,0:2", "-5", "1:2:3", ""])
def test_a_bound_that_is_none_of_these_is_refused(text):
    with pytest.raises(ValueError):
        parse_bound(text)


FIRST = {0: 0, 1: 100, 2: 0}
END = {0: 50, 1: 300, 2: 0}  # partition 2 is empty


def test_an_offset_for_every_partition_is_clamped_to_what_each_partition_has():
    ranges = plan([0, 1, 2], FIRST, END, OffsetBound(every=40), None)
    assert ranges == [PartitionRange(0, 40, 50), PartitionRange(1, 100, 300), PartitionRange(2, 0, 0)]
    assert [r.size for r in ranges] == [10, 200, 0]


def test_per_partition_from_reads_only_the_partitions_it_names_and_per_partition_to_ends_only_those():
    start, stop = OffsetBound(per_partition={1: 150, 0: 10}), OffsetBound(per_partition={1: 200})
    ranges = plan([0, 1, 2], FIRST, END, start, stop)
    assert ranges == [PartitionRange(0, 10, 50), PartitionRange(1, 150, 200)]
    assert unknown_partitions(OffsetBound(per_partition={7: 1}), [0, 1, 2]) == [7]
    assert unknown_partitions(TimeBound(T), [0]) == [] and unknown_partitions(None, [0]) == []


def test_times_use_the_brokers_offsets_and_no_record_after_a_time_means_the_end():
    start_times = {0: 20, 1: None, 2: None}
    stop_times = {0: 30, 1: None, 2: None}
    ranges = plan([0, 1, 2], FIRST, END, TimeBound(T), TimeBound(T + 1), start_times, stop_times)
    assert ranges == [PartitionRange(0, 20, 30), PartitionRange(1, 300, 300), PartitionRange(2, 0, 0)]


def test_a_to_before_the_from_is_an_empty_range_not_a_negative_one():
    ranges = plan([0], FIRST, END, OffsetBound(every=40), OffsetBound(every=10))
    assert ranges == [PartitionRange(0, 40, 40)] and ranges[0].size == 0


def test_a_batch_stopped_halfway_goes_on_from_the_first_record_it_did_not_handle_in_each_partition():
    positions = [(0, 5), (1, 7), (0, 6), (1, 8), (2, 1)]
    batch_next = {0: 7, 1: 9, 2: 2, 3: 40}
    assert resume_points(positions, 2, batch_next) == {0: 6, 1: 8, 2: 1, 3: 40}
    assert resume_points(positions, 0, batch_next) == {0: 5, 1: 7, 2: 1, 3: 40}
    assert resume_points(positions, 5, batch_next) == batch_next  # all handled
