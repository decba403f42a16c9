from __future__ import annotations

import pytest

from gateway_app.voice.audio import billed_characters, billed_seconds, chunk_count, filename_for, split, wav_duration
from tests.fakes.wav import make_wav, riff_comment


def test_wav_duration_comes_from_the_header_whatever_chunks_precede_the_data():
    assert wav_duration(make_wav(2.0)) == 2.0
    assert wav_duration(make_wav(0.75, "a comment chunk before the data")) == 0.75
    assert wav_duration(make_wav(3.0, rate=8000)) == 3.0


@pytest.mark.parametrize("data", [b"", b"RIFF", b"ID3\x04" + b"\0" * 100, make_wav(1.0)[:30]])
def test_wav_duration_is_none_for_what_is_no_readable_wav(data):
    assert wav_duration(data) is None


def test_the_test_wav_carries_its_text_in_a_riff_comment():
    assert riff_comment(make_wav(0.1, "héllo")) == "héllo"
    assert riff_comment(make_wav(0.1)) is None and riff_comment(b"not riff") is None


@pytest.mark.parametrize("duration, billed", [(0.2, 1), (1.0, 1), (1.01, 2), (59.5, 60), (None, 1), (0, 1),
                                              (float("nan"), 1)])
def test_seconds_are_rounded_up_to_whole_seconds_at_least_one(duration, billed):
    assert billed_seconds(duration) == billed


def test_characters_are_code_points():
    assert billed_characters("héllo 👋") == 7


def test_split_into_chunks_of_a_size_the_last_shorter():
    data = bytes(range(256)) * 10  # 2560 bytes
    pieces = split(data, 1024)
    assert [len(p) for p in pieces] == [1024, 1024, 512] and b"".join(pieces) == data
    assert chunk_count(2560, 1024) == 3 and chunk_count(2048, 1024) == 2 and chunk_count(0, 1024) == 1
    assert split(b"", 10) == [b""]
    with pytest.raises(ValueError):
        split(data, 0)


def test_the_file_name_tells_the_endpoint_the_container():
    assert filename_for("wav") == "audio.wav" and filename_for("m4a") == "audio.m4a"
