"""`gateway keys generate` and `gateway keys encrypt`."""

from __future__ import annotations

import io

import pytest

from gateway_app.cli import keys_command
from gateway_app.credentials.keyring import Keyring, generate_key

KEY = "sk-proj-Zx81mQp0aLw2Rt5vYb7nKc3dFg9hJ4f3a9"


def test_generate_prints_a_usable_entry() -> None:
    out = io.StringIO()
    assert keys_command(["generate", "--id", "k2025"], stdout=out) == 0
    entry = out.getvalue().strip()
    assert entry.startswith("k2025:") and Keyring.parse(entry).key_ids == ("k2025",)


def test_encrypt_reads_stdin_and_strips_the_trailing_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = generate_key("k1")
    monkeypatch.setenv("GATEWAY_KEYRING", entry)
    out = io.StringIO()
    assert keys_command(["encrypt", "--agent", "a7", "--provider", "openai"],
                        stdin=io.StringIO(KEY + "\n"), stdout=out) == 0
    ref = out.getvalue().strip()
    assert ref.startswith("enc:v1:k1:") and KEY not in out.getvalue()
    assert Keyring.parse(entry).decrypt(ref, "a7", "openai").reveal() == KEY


def test_encrypt_without_keyring_or_key_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("GATEWAY_KEYRING", raising=False)
    args = ["encrypt", "--agent", "a7", "--provider", "openai"]
    assert keys_command(args, stdin=io.StringIO(KEY), stdout=io.StringIO()) == 2
    assert "GATEWAY_KEYRING is not set" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_KEYRING", generate_key("k1"))
    assert keys_command(args, stdin=io.StringIO("\n"), stdout=io.StringIO()) == 2
    assert "no key on stdin" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_KEYRING", "k1:short")
    assert keys_command(args, stdin=io.StringIO(KEY), stdout=io.StringIO()) == 2
    assert KEY not in capsys.readouterr().err
