"""No log line carries a key: resolved secrets and key-shaped strings are redacted for every logger."""

import logging

from gateway_app.log_redaction import Redactor, fingerprint, install


def test_known_secrets_and_key_shapes_are_replaced_by_fingerprints():
    redactor = Redactor()
    redactor.remember("hunter2-very-secret")
    text = redactor.redact("key hunter2-very-secret and sk-ant-api03-abcdefghijklmnopqrstuv, AKIAABCDEFGHIJKLMNOP")
    assert "hunter2" not in text and "sk-ant-api03" not in text and "AKIAABCDEFGHIJKLMNOP" not in text
    assert f"fp={fingerprint('hunter2-very-secret')}" in text
    assert redactor.redact("Authorization: Bearer abcdefghijklmnopqrstuvwxyz") == \
        f"Authorization: Bearer [redacted fp={fingerprint('abcdefghijklmnopqrstuvwxyz')}]"
    assert redactor.redact("an ordinary line: 200 OK, 12 ms") == "an ordinary line: 200 OK, 12 ms"


def test_every_logger_and_every_traceback_is_redacted(caplog):
    redactor = Redactor()
    install(redactor)
    redactor.remember("canary-4f9c2e71")
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.sdk.deep.child").info("calling with %s", "canary-4f9c2e71")
        try:
            raise ValueError("bad key sk-proj-abcdefghijklmnopqrstuvwxyz")
        except ValueError:
            logging.getLogger("gateway").exception("failed")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "canary-4f9c2e71" not in text and "sk-proj-abcdefghijklmnop" not in text
    assert "calling with [redacted fp=" in caplog.text
