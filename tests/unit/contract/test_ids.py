from gateway_app.contract import ids


def test_ids_are_deterministic():
    assert ids.reply_id("m1") == ids.reply_id("m1") != ids.reply_id("m2")
    assert ids.billing_event_id("m1") != ids.reply_id("m1")
