"""`gateway keys rotate`: every stored `enc:` reference re-encrypted under the keyring's newest key.

The stored profiles are read from the `agent-profiles` table's changelog (the latest row of each agent);
each live profile whose references (its own and its fallbacks') use an older key id is published again
to `agent-profile-updated` as the next version, with those references re-encrypted. Workers apply it like
any profile update, at an exact point in the agent's stream; no message fails on the way, since the
older key stays in the keyring until no profile refers to it.
"""

from __future__ import annotations

import json
from typing import Any

from gateway_app.credentials.keyring import Keyring

ENC = "enc:"


def rotate_profile(row: dict[str, Any], keyring: Keyring) -> dict[str, Any] | None:
    """The profile's next version with every `enc:` reference under the newest key, or None when it has
    none to rotate (a tombstone, no `enc:` reference, or all of them already under the newest key)."""
    if row.get("deleted"):
        return None
    agent_id = row["agent_id"]
    changed = False

    def rotated(credentials: dict[str, Any] | None, provider: str) -> dict[str, Any] | None:
        nonlocal changed
        if not credentials:
            return credentials
        out = dict(credentials)
        for name in ("key_ref", "secondary_key_ref"):
            ref = out.get(name)
            if isinstance(ref, str) and ref.startswith(ENC) and ref.split(":")[2] != keyring.primary:
                out[name] = keyring.rotate(ref, agent_id, provider)
                changed = True
        return out

    new = dict(row, credentials=rotated(row.get("credentials"), row["provider"]))
    new["fallbacks"] = [dict(f, credentials=rotated(f.get("credentials"), f["provider"]))
                        for f in row.get("fallbacks") or ()]
    fallback = (row.get("budget") or {}).get("fallback")
    if fallback:
        new["budget"] = dict(row["budget"], fallback=dict(fallback, credentials=rotated(fallback.get("credentials"),
                                                                                        fallback["provider"])))
    if not changed:
        return None
    new["version"] = int(row["version"]) + 1
    return new


def latest_rows(records: list[tuple[bytes | None, bytes | None]]) -> dict[str, dict[str, Any]]:
    """Changelog records (key, value) in offset order -> the latest row of each agent."""
    rows: dict[str, dict[str, Any]] = {}
    for key, value in records:
        if key is None:
            continue
        agent_id = json.loads(key)
        if value is None:
            rows.pop(agent_id, None)
        else:
            rows[agent_id] = json.loads(value)
    return rows
