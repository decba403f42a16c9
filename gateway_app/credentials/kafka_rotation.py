"""`gateway keys rotate` against the cluster: read the stored profiles from the table's changelog, publish
the ones with references under an older key id as their next version (see `rotation`)."""

from __future__ import annotations

import json
from typing import TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agents_tables.tables import PROFILES
from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.keyring import load_keyring
from gateway_app.credentials.rotation import latest_rows, rotate_profile
from gateway_app.settings import Settings


def bootstrap(settings: Settings) -> str:
    return settings.broker_url.split("://", 1)[-1].replace(";", ",")


async def read_changelog(servers: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of the topic, in offset order per partition (an absent topic: none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for d in described if not d.get("error_code")
                  for p in d["partitions"]]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[bytes | None, bytes | None]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += [(r.key, r.value) for r in batch]
        return records
    finally:
        await consumer.stop()


async def rotate_stored_profiles(settings: Settings, *, dry_run: bool, out: TextIO) -> int:
    keyring = load_keyring(settings)
    if keyring is None:
        print("gateway keys rotate: GATEWAY_KEYRING is not set", file=out)
        return 2
    servers = bootstrap(settings)
    rows = latest_rows(await read_changelog(servers, f"{settings.app_id}-{PROFILES}-changelog"))
    updates: dict[str, dict] = {}
    failed: list[str] = []
    for agent_id, row in sorted(rows.items()):
        try:
            new = rotate_profile(row, keyring)
        except CredentialsUnavailable as exc:  # its key id is gone, or the blob is not this agent's
            failed.append(agent_id)
            print(f"{agent_id}: NOT rotated: {exc.reason}", file=out)
            continue
        if new is not None:
            updates[agent_id] = new
            print(f"{agent_id}: version {new['version']} under key {keyring.primary}", file=out)
    status = 1 if failed else 0  # a script running this must notice a profile left behind
    if dry_run or not updates:
        print(f"{len(updates)} of {len(rows)} stored profiles {'would get' if dry_run else 'got'} a new version, "
              f"{len(failed)} could not be rotated", file=out)
        return status
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        for agent_id, new in updates.items():
            await producer.send_and_wait(settings.topics.profile_updated, json.dumps(new).encode(),
                                         key=agent_id.encode())
    finally:
        await producer.stop()
    print(f"{len(updates)} of {len(rows)} stored profiles got a new version, {len(failed)} could not be rotated",
          file=out)
    return status
