from gateway_app.pipeline.acker import InOrderAcker


class FakeEvent:
    def __init__(self, offset, log):
        self.offset, self.log = offset, log

    def ack(self):
        self.log.append(self.offset)
        return True


def test_acks_in_offset_order_per_partition_whatever_the_finish_order():
    log: list[int] = []
    acker = InOrderAcker()
    slots = {o: acker.track(0, FakeEvent(o, log)) for o in range(5)}
    other = acker.track(1, FakeEvent(100, log))
    assert acker.done(0, slots[3]) == 0 and log == []
    assert acker.done(0, slots[1]) == 0
    assert acker.done(1, other) == 1 and log == [100]
    assert acker.done(0, slots[0]) == 2 and log == [100, 0, 1]
    assert acker.done(0, slots[2]) == 2 and log == [100, 0, 1, 2, 3]
    assert acker.pending(0) == 1


def test_forget_all_drops_unacked_without_acking():
    log: list[int] = []
    acker = InOrderAcker()
    slot = acker.track(0, FakeEvent(7, log))
    assert acker.forget_all() == 1
    assert acker.done(0, slot) == 0 and log == []


def test_oldest_is_the_first_event_not_done_which_a_usage_row_may_forget_below():
    from types import SimpleNamespace

    class Offset(FakeEvent):
        def __init__(self, offset, log):
            super().__init__(offset, log)
            self.message = SimpleNamespace(offset=offset)

    acker, log = InOrderAcker(), []
    slots = [acker.track(0, Offset(o, log)) for o in (10, 11, 12)]
    assert acker.oldest(0) == 10 and acker.oldest(1) is None
    acker.done(0, slots[1])
    assert acker.oldest(0) == 10  # 11 is done, 10 is not
    acker.done(0, slots[0])
    assert acker.oldest(0) == 12
