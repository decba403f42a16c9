"""AWS-backed credentials through Kafka, against moto's server in this process: an `aws-sm:` reference
answers with the key held in Secrets Manager (and a missing secret fails closed); a worker whose keyring
is KMS-wrapped answers an `enc:` agent; a worker whose keyring does not unwrap does not start."""

from __future__ import annotations

import asyncio
import json
import socket

import boto3
import pytest
from moto.server import ThreadedMotoServer

from gateway_app.credentials.aws import generate_wrapped_key, unwrap_entries
from gateway_app.credentials.keyring import Keyring
from tests.fakes.base import ServerThread
from tests.integration.harness import Chat
from tests.integration.test_credentials import KeyedOpenAI, agent_profile, ask

ENV_KEY = "sk-environment-default-0000"  # the worker's own OPENAI_API_KEY: no agent here may use it
SM_KEY, ENC_KEY = "sk-from-secrets-manager-7777", "sk-from-kms-keyring-8888"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def aws_env():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    try:
        yield env
    finally:
        server.stop()


@pytest.fixture
def fake():
    server = KeyedOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def aws_client(env: dict[str, str], service: str):
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"], region_name=env["AWS_REGION"],
    ).client(service, endpoint_url=env["AWS_ENDPOINT_URL"])


async def test_secrets_manager_and_a_kms_wrapped_keyring(cluster_factory, fake, aws_env):
    server, thread = fake
    sm, kms = aws_client(aws_env, "secretsmanager"), aws_client(aws_env, "kms")
    sm.create_secret(Name="gateway/agents/sm-agent", SecretString=json.dumps({"api_key": SM_KEY}))
    kms_key = "aws-kms:" + kms.create_key(Description="gateway keyring")["KeyMetadata"]["KeyId"]
    wrapped = generate_wrapped_key("k1", kms_key, client=kms)
    # The agent's key encrypted under the unwrapped keyring, as `gateway keys encrypt` would do.
    enc_ref = Keyring([*unwrap_entries([("k1", wrapped.split(":", 1)[1])], kms_key, client=kms)]).encrypt(
        "enc-agent", "openai", ENC_KEY)

    server.valid |= {SM_KEY, ENC_KEY}
    cluster = cluster_factory(OPENAI_API_KEY=ENV_KEY, OPENAI_BASE_URL=thread.url + "/v1",
                              GATEWAY_KMS_KEY=kms_key, GATEWAY_KEYRING=wrapped, **aws_env)
    worker = cluster.worker()
    await asyncio.to_thread(worker.wait_ready)
    async with Chat(cluster.deployment) as chat:
        await chat.profile(agent_profile("sm-agent", keyRef="aws-sm:gateway/agents/sm-agent#api_key"))
        await chat.profile(agent_profile("enc-agent", keyRef=enc_ref))
        await chat.profile(agent_profile("sm-missing", keyRef="aws-sm:gateway/agents/not-there#api_key"))
        for agent_id in ("sm-agent", "enc-agent"):
            reply = await ask(chat, agent_id)
            assert reply["status"] == "ok" and reply["content"].startswith("fake-openai says:"), reply
        assert {SM_KEY, ENC_KEY} <= set(server.keys_seen)
        reply = await ask(chat, "sm-missing")
        assert reply["status"] == "error" and reply["error"]["code"] == "credentials_unavailable", reply
        assert ENV_KEY not in server.keys_seen  # never a silent fall back to the environment's key

    # A keyring wrapped under another KMS key does not unwrap: that worker refuses to start.
    other = "aws-kms:" + kms.create_key()["KeyMetadata"]["KeyId"]
    bad = cluster_factory(OPENAI_API_KEY=ENV_KEY, GATEWAY_KMS_KEY=other, GATEWAY_KEYRING=wrapped, **aws_env)
    refused = bad.worker()
    with pytest.raises(AssertionError, match="worker exited"):
        await asyncio.to_thread(refused.wait_ready, 60)
    assert "could not be unwrapped" in refused.tail()
