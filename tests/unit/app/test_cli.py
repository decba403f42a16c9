from gateway_app.cli import split_data_dir


def test_data_dir_option_is_taken_out_for_the_settings():
    assert split_data_dir(["worker", "--data-dir", "d", "-l", "info"]) == ("d", ["worker", "-l", "info"])
    assert split_data_dir(["worker", "--datadir=x"]) == ("x", ["worker"])
    assert split_data_dir(["worker"]) == (None, ["worker"])
