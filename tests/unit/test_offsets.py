from gateway_app.flow.offsets import OffsetGuard, Verdict


def test_contiguous_offsets_pass_and_a_hole_asks_for_a_seek_back():
    guard = OffsetGuard()
    assert [guard.check(0, o) for o in (5, 6, 7)] == [Verdict.NEXT] * 3
    assert guard.check(0, 10) is Verdict.HOLE and guard.expected[0] == 8
    assert guard.check(0, 11) is Verdict.HOLE  # still buffered after the seek: dropped too
    assert [guard.check(0, o) for o in (8, 9, 10, 11)] == [Verdict.NEXT] * 4  # re-read after the seek
    assert guard.check(0, 9) is Verdict.REPEAT


def test_a_real_hole_is_accepted_when_the_seek_lands_on_it_again():
    guard = OffsetGuard()
    guard.check(1, 0)
    assert guard.check(1, 3) is Verdict.HOLE  # offsets 1, 2 are transaction markers
    assert guard.check(1, 3) is Verdict.NEXT  # after the seek the same record comes first: the hole is real
    assert guard.check(1, 4) is Verdict.NEXT


def test_partitions_are_independent_and_reset_forgets_positions():
    guard = OffsetGuard()
    guard.check(0, 5)
    assert guard.check(1, 100) is Verdict.NEXT
    guard.reset()
    assert guard.check(0, 2) is Verdict.NEXT
