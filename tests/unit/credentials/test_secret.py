"""`Secret` never shows its value, however it is printed, logged or serialised."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import pickle

import pytest
from pydantic import BaseModel

from gateway_app.credentials.secret import MASK, Secret, fingerprint

KEY = "sk-proj-Zx81mQp0aLw2Rt5vYb7nKc3dFg9hJ4f3a9"


class Holder(BaseModel):
    provider: str
    key: Secret


def test_fingerprint_is_first_12_hex_of_sha256() -> None:
    assert fingerprint(KEY) == hashlib.sha256(KEY.encode()).hexdigest()[:12]
    assert fingerprint(KEY.encode()) == fingerprint(KEY)
    assert len(fingerprint("x")) == 12


def test_reveal_returns_the_value() -> None:
    assert Secret(KEY).reveal() == KEY


def test_repr_str_and_format_mask_the_value() -> None:
    secret = Secret(KEY)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", f"{secret:>40}", "%s %r" % (secret, secret),
             "{}".format(secret), repr([secret]), repr({"k": secret})]
    for text in shown:
        assert KEY not in text
        assert "f3a9" not in text and "sk-" not in text
    assert repr(secret) == f"Secret({MASK}, fp={fingerprint(KEY)})"
    assert str(secret) == MASK


def test_json_dumps_with_default_str_masks() -> None:
    text = json.dumps({"key": Secret(KEY)}, default=str)
    assert KEY not in text and MASK in text


def test_json_dumps_without_default_refuses() -> None:
    with pytest.raises(TypeError):
        json.dumps({"key": Secret(KEY)})


def test_pydantic_model_masks_in_repr_dump_and_json() -> None:
    model = Holder(provider="openai", key=KEY)
    assert isinstance(model.key, Secret) and model.key.reveal() == KEY
    for text in (repr(model), str(model), model.model_dump_json(), json.dumps(model.model_dump())):
        assert KEY not in text
    assert json.loads(model.model_dump_json())["key"] == MASK
    assert Holder(provider="openai", key=Secret(KEY)).key.reveal() == KEY
    assert Holder.model_json_schema()["properties"]["key"]["type"] == "string"


def test_logging_with_percent_s_masks(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("test.secret").info("using key %s (%r)", Secret(KEY), Secret(KEY))
    assert KEY not in caplog.text and MASK in caplog.text


def test_pickling_is_refused() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(KEY))
    with pytest.raises(TypeError):
        pickle.dumps(Holder(provider="openai", key=KEY))


def test_copies_are_the_same_object_and_it_is_immutable() -> None:
    secret = Secret(KEY)
    assert copy.copy(secret) is secret and copy.deepcopy(secret) is secret
    with pytest.raises(AttributeError):
        secret._value = "other"  # type: ignore[misc]


def test_equality_and_hash() -> None:
    assert Secret(KEY) == Secret(KEY) and Secret(KEY) != Secret("other")
    assert hash(Secret(KEY)) == hash(Secret(KEY))
    assert Secret(KEY).fingerprint == fingerprint(KEY)
