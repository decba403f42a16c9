"""One trace per message across two workers on a real broker: the chat service's producer sends a
message with a `traceparent` header; the workers export their spans over OTLP/HTTP (protobuf) to a local
receiver that decodes them. Every message's trace joins the upstream parent, the intake, the re-keyed
hop, the processor with its stage spans, the provider attempt (whose HTTP request the provider fake saw
with that trace's `traceparent`) and the reply, whose record carries that trace's `traceparent` too.
The messages go to every input partition, so some are taken in by one worker and answered by the other."""

from __future__ import annotations

import json
import secrets
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2

from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.otlp_receiver import OTLPReceiver
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until

STAGES = ["admission", "transcribe", "conversation_turn", "dedupe", "collaboration_in", "prompt",
          "summarize", "moderation_in", "pre_call", "cache", "draft", "provider_call", "ranking",
          "collaborate", "post_call", "reply_format", "moderation_out", "sentiment", "speak",
          "settle_usage", "outputs"]
MODEL = "gpt-4o-mini"


def rooms_on_every_partition(partitions: int) -> list[str]:
    """One room id per input partition (the chat service keys messages by room, murmur2 like aiokafka)."""
    rooms: dict[int, str] = {}
    while len(rooms) < partitions:
        room = f"room-{uuid.uuid4().hex[:8]}"
        rooms.setdefault((murmur2(room.encode()) & 0x7FFFFFFF) % partitions, room)
    return [rooms[p] for p in range(partitions)]


async def test_one_trace_from_the_upstream_producer_to_the_reply_across_two_workers(cluster_factory):
    receiver, openai = OTLPReceiver(), FakeOpenAI()
    with ServerThread(receiver.app) as collector, ServerThread(openai.app) as provider:
        cluster = cluster_factory(
            OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=provider.url + "/v1",
            OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_BSP_SCHEDULE_DELAY="100", OTEL_SERVICE_NAME="ai-gateway-test",
        )
        workers = [cluster.worker(), cluster.worker()]
        for worker in workers:
            worker.wait_ready()
        d = cluster.deployment
        agent = f"traced-{uuid.uuid4().hex[:6]}"
        replies = AIOKafkaConsumer(d.topic("replies"), bootstrap_servers=d.bootstrap, auto_offset_reset="earliest",
                                   group_id=None)
        await replies.start()
        try:
            async with Chat(d) as chat:
                await chat.profile(profile(agent, provider="openai", model=MODEL))
                await chat.wait_for(profiles_applied(workers[0], {agent: 1}), what="the profile")
                await chat.wait_for(lambda: all(w.get("/ready")[0] == 200 for w in workers), what="stable group")
                upstream = {}  # message id -> (trace id, the upstream producer's span id)
                for room in rooms_on_every_partition(d.partitions):
                    msg = message(agent, room_id=room, content="tell me something")
                    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
                    upstream[msg["messageId"]] = (trace_id, span_id)
                    await chat.producer.send_and_wait(
                        d.topic("messages"), json.dumps(msg).encode(), key=room.encode(),
                        headers=[("traceparent", f"00-{trace_id}-{span_id}-01".encode())])
                answered = await chat.wait_replies(list(upstream), timeout=90)
                assert all(answered[m][0]["status"] == "ok" for m in upstream), answered
                reply_headers = await headers_of_replies(replies, set(upstream))
        finally:
            await replies.stop()

        expected = {f"process {d.topic('messages')}", f"send {d.topic('agent_events')}",
                    f"process {d.topic('agent_events')}", f"chat {MODEL}", f"send {d.topic('replies')}",
                    f"send {d.topic('billing')}", *(f"stage {name}" for name in STAGES)}

        def complete(trace_id: str) -> bool:  # a span is exported when it ends: the message's own comes last
            return expected <= {s.name for s in receiver.trace(trace_id)}

        await wait_until(lambda: all(complete(t) for t, _ in upstream.values()), timeout=30,
                         what="every message's spans at the receiver")
        crossed = 0
        for message_id, (trace_id, upstream_span) in upstream.items():
            spans = receiver.trace(trace_id)
            by_name = {}
            for span in spans:
                by_name.setdefault(span.name, []).append(span)
            [intake] = by_name[f"process {d.topic('messages')}"]
            [forward] = by_name[f"send {d.topic('agent_events')}"]
            [processor] = by_name[f"process {d.topic('agent_events')}"]
            [attempt] = by_name[f"chat {MODEL}"]
            [reply] = by_name[f"send {d.topic('replies')}"]
            assert intake.parent_span_id == upstream_span and intake.kind == "CONSUMER"
            assert intake.attributes["messaging.system"] == "kafka"
            assert forward.parent_span_id == intake.span_id and forward.kind == "PRODUCER"
            assert processor.parent_span_id == forward.span_id and processor.kind == "CONSUMER"
            assert processor.attributes["gateway.message.id"] == message_id
            stages = [s for s in spans if s.name.startswith("stage ")]
            assert [s.name for s in stages] == [f"stage {name}" for name in STAGES]
            assert all(s.parent_span_id == processor.span_id for s in stages)
            [provider_call] = by_name["stage provider_call"]
            assert attempt.parent_span_id == provider_call.span_id and attempt.kind == "CLIENT"
            assert attempt.attributes["gen_ai.provider.name"] == "openai"
            assert attempt.attributes["gen_ai.request.model"] == MODEL
            assert attempt.attributes["gen_ai.response.model"] == MODEL
            assert attempt.attributes["gen_ai.usage.input_tokens"] > 0 and attempt.attributes["gateway.attempt"] == 1
            assert reply.parent_span_id == processor.span_id
            # The provider's HTTP request carried the attempt's traceparent; the reply record its send span's.
            assert f"00-{trace_id}-{attempt.span_id}-01" in openai.traceparents
            assert reply_headers[message_id] == f"00-{trace_id}-{reply.span_id}-01"
            assert {s.resource["service.name"] for s in spans} == {"ai-gateway-test"}
            assert not any("tell me something" in str(v) for s in spans for v in s.attributes.values())
            crossed += intake.resource["service.instance.id"] != processor.resource["service.instance.id"]
        instances = {s.resource["service.instance.id"] for s in receiver.spans}
        assert len(instances) == 2, instances
        assert crossed >= 1, "no message was taken in by one worker and answered by the other"
        print(f"\n[figures] tracing: traces={len(upstream)} crossed_workers={crossed} "
              f"spans_received={len(receiver.spans)} export_requests={receiver.requests}")
        cluster.stop()  # while the receiver still listens: the workers' last export at exit reaches it


async def headers_of_replies(consumer: AIOKafkaConsumer, wanted: set[str]) -> dict[str, str]:
    """message id -> the `traceparent` header of its reply record."""
    found: dict[str, str] = {}
    for _ in range(300):
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                reply = json.loads(record.value)
                if reply["message_id"] in wanted:
                    found[reply["message_id"]] = dict(record.headers or ())["traceparent"].decode()
        if wanted <= set(found):
            return found
    raise AssertionError(f"reply records of {wanted - set(found)} not read")
