"""The canary: one random provider key, used through every reference kind (env, file, enc, aws-sm against
moto, vault against OpenBao, azure-kv against the Key Vault fake) and every failure path (401,
500, a timeout, a profile carrying it by value, DLQ records, kill -9 and a restore from an empty data
directory), then searched for raw, base64- and URL-encoded in everything the gateway wrote: every
topic it produces to (changelogs included), its RocksDB files, its log, and its web responses."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from gateway_app.credentials.keyring import Keyring, generate_key
from tests.fakes.base import ServerThread
from tests.integration.harness import Chat, message, profile, wait_until
from tests.fakes.azure_keyvault import RunningKeyVault
from tests.fakes.openbao import OpenBaoDevServer
from tests.integration.test_credentials import KeyedOpenAI
from tests.integration.test_credentials_aws import aws_client, aws_env  # noqa: F401  (a fixture)
from tests.integration.test_faults import say

TOKEN = "read-token-" + uuid.uuid4().hex


def encodings(secret: str) -> list[bytes]:
    """The secret as raw bytes, URL-encoded, and base64 at each of the three alignments it can take
    inside a longer encoded string (the characters that depend on the neighbours are left out)."""
    raw = secret.encode()
    forms = [raw, quote(secret, safe="").encode()]
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + raw)
            forms.append(encoded[(shift * 4 + 2) // 3 + 1:-3])
    return forms


def test_the_search_finds_the_canary_in_every_encoding():
    """The control: a search that cannot find what it looks for would report 0 for anything."""
    canary = "sk-canary-" + uuid.uuid4().hex
    for prefix in (b"", b"a", b"ab", b'{"key": "'):
        embedded = prefix + canary.encode() + b'", "more": 1}'
        for haystack in (embedded, base64.b64encode(embedded), base64.urlsafe_b64encode(embedded),
                         quote(embedded.decode(), safe="").encode()):
            assert any(form in haystack for form in encodings(canary)), (prefix, haystack)


async def topic_records(bootstrap: str, prefix: str) -> tuple[int, list[bytes]]:
    """Every record (key and value) of every topic of the deployment the gateway writes to."""
    inputs = {f"{prefix}.{key}" for key in ("messages", "profile_created", "profile_updated", "profile_deleted")}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        written = [t for t in await admin.list_topics() if t.startswith(prefix) and t not in inputs]
        described = await admin.describe_topics(written)
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                values += [(r.key or b"") + b"\n" + (r.value or b"") for r in records]
    finally:
        await consumer.stop()
    return len(written), values


async def test_the_canary_is_nowhere(cluster_factory, tmp_path, capsys, aws_env):
    canary = "sk-canary-" + uuid.uuid4().hex
    fake = KeyedOpenAI()
    fake.valid = {canary}
    key_file = tmp_path / "canary-key"
    key_file.write_text(canary)
    kek = generate_key("kc")
    aws_client(aws_env, "secretsmanager").create_secret(Name="canary", SecretString=json.dumps({"api_key": canary}))
    with ServerThread(fake.app) as server, OpenBaoDevServer() as bao, RunningKeyVault(tmp_path) as key_vault:
        bao.put("agents/canary", api_key=canary)
        key_vault.vault.set_secret("canaryvault", "openai-key", canary)
        cluster = cluster_factory(OPENAI_API_KEY="sk-environment-not-this", OPENAI_BASE_URL=server.url + "/v1",
                                  CANARY_KEY=canary, GATEWAY_KEYRING=kek, GATEWAY_WEB_READ_TOKENS=TOKEN,
                                  GATEWAY_CALL_TIMEOUT_SECONDS="1", GATEWAY_RETRY_MAX_ATTEMPTS="2",
                                  # Six agents share one endpoint and half their messages fail on
                                  # purpose: the breaker must not turn a "hello" into circuit_open.
                                  GATEWAY_BREAKER_CONSECUTIVE_FAILURES="1000", GATEWAY_BREAKER_MIN_CALLS="1000",
                                  GATEWAY_RETRY_BASE_DELAY_SECONDS="0.05", VAULT_ADDR=bao.addr, VAULT_TOKEN=bao.token,
                                  **aws_env, **key_vault.env())
        worker = cluster.worker()
        await asyncio.to_thread(worker.wait_ready)
        refs = {"env": "env:CANARY_KEY", "file": f"file:{key_file}",
                "enc": Keyring.parse(kek).encrypt("canary-enc", "openai", canary),
                "aws": "aws-sm:canary#api_key", "vault": "vault:secret/agents/canary#api_key",
                "azure": "azure-kv:canaryvault/openai-key"}
        async with Chat(cluster.deployment) as chat:
            for kind, ref in refs.items():
                await chat.profile(profile(f"canary-{kind}", provider="openai", model="gpt-4o-mini",
                                           credentials={"keyRef": ref}))
            await chat.profile(profile("canary-plain", provider="openai", model="gpt-4o-mini",
                                       options={"apiKey": canary}))  # by value: refused
            sent = []
            for kind in refs:
                for content in ("hello", "FAULT:401", "FAULT:500", "FAULT:hang"):
                    msg = message(f"canary-{kind}", content=content)
                    sent.append(msg["messageId"])
                    await chat.message(msg)
            await chat.wait_replies(sent, timeout=120)
            statuses = [r["status"] for r in chat.replies() if r["message_id"] in sent]
            assert statuses.count("ok") == len(refs) and statuses.count("error") == 3 * len(refs), statuses
            await wait_until(lambda: len(chat.seen["dlq"]) >= 3 * len(refs) + 1, 60, "the DLQ records")

            worker.kill()  # and a restore of every table from its changelog into an empty data directory
            shutil.rmtree(worker.data_dir)
            worker = cluster.worker(index=0)
            await asyncio.to_thread(worker.wait_ready)
            again = message("canary-enc", content="after the restore")
            await chat.message(again)
            assert (await chat.wait_replies([again["messageId"]], 90))[again["messageId"]][0]["status"] == "ok"

        responses = [worker.get(path, headers={"Authorization": f"Bearer {TOKEN}"})[1]
                     for path in ("/health", "/ready", "/providers", *(f"/agents/canary-{k}" for k in refs),
                                  *(f"/agents/canary-{k}/usage" for k in refs))]
        topics, records = await topic_records(cluster.deployment.bootstrap, cluster.deployment.name)
        files = [p for p in Path(worker.data_dir).rglob("*") if p.is_file()]
        haystacks = records + [p.read_bytes() for p in files] + [worker.log_path.read_bytes()] + \
            [repr(r).encode() for r in responses]
        found = sum(h.count(form) for h in haystacks for form in encodings(canary))
        say(capsys, f"\n[canary] {found} occurrences of the canary key (raw, base64, URL-encoded) in "
                    f"{len(records)} records of {topics} topics, {len(files)} RocksDB files, the worker's log "
                    f"and {len(responses)} web responses; the provider saw it {fake.keys_seen.count(canary)} times")
    assert fake.keys_seen.count(canary) >= len(refs)  # it was really used, through every reference kind
    assert found == 0
    log = worker.log_path.read_text()  # redaction must not cost the log its meaning
    assert "profile.applied agent=canary-env version=1" in log and "Logging error" not in log
