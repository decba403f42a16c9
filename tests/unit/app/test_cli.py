from gateway_app.cli import split_data_dir


def test_data_dir_option_is_taken_out_for_the_settings():
    assert split_data_dir(["worker", "--data-dir", "d", "-l", "info"]) == ("d", ["worker", "-l", "info"])
    assert split_data_dir(["worker", "--datadir=x"]) == ("x", ["worker"])
    assert split_data_dir(["worker"]) == (None, ["worker"])


def test_what_lives_as_long_as_the_process_is_frozen_out_of_the_collectors_sight():
    import gc

    from gateway_app.app import freeze_long_lived

    kept = [[n] for n in range(1000)]  # containers the collector tracks
    before = gc.get_freeze_count()
    freeze_long_lived()
    try:
        assert gc.get_freeze_count() >= before + len(kept)
        in_sight = {id(o) for o in gc.get_objects()}  # generations 0-2: what a collection scans
        assert not any(id(k) in in_sight for k in kept)
    finally:
        gc.unfreeze()
