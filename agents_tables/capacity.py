"""The capacity agent: `gateway-provider-capacity` (key: provider endpoint) -> the `provider-capacity`
table, and each answer onto `gateway-provider-grants` (rules: `gateway_app.resilience.capacity`).

The worker that owns an endpoint's partition is its one owner, so its grants of a window add up exactly.
A grant is announced only once the row that counts it is on the changelog (the producer is flushed
first): an owner killed after announcing it cannot come back, restored from the changelog, and grant the
same capacity twice. An ask redelivered after such a restart is answered as before (by request id).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import faust
import mode
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents_tables.ordered import register_ordered
from gateway_app.kafka.transport import bootstrap_servers
from gateway_app.publisher import Publisher
from gateway_app.resilience import capacity
from gateway_app.resilience.capacity import Ask, Grant, PauseAnnouncement
from gateway_app.resilience.leases import LeaseClient
from gateway_app.settings import Settings
from gateway_app.topics import GatewayTopics

log = logging.getLogger(__name__)


async def handle(raw: bytes, table: faust.Table, publisher: Publisher, owner: str) -> Grant | PauseAnnouncement:
    request = capacity.decode_request(raw)
    row = capacity.decode_row(table.get(request.endpoint))
    answer: Grant | PauseAnnouncement
    if isinstance(request, Ask):
        row, answer = capacity.grant(row, request)
        answer = replace(answer, owner=owner)
    else:
        row = capacity.pause(row, request)
        answer = PauseAnnouncement(request.endpoint, row.paused_until)
    table[request.endpoint] = capacity.encode(row)
    await publisher.flush()  # the row on the changelog before anyone can spend what it counts
    await publisher.to_every_worker(request.endpoint, capacity.encode(answer))
    return answer


def register(app: faust.App, table: faust.Table, publisher: Publisher, topics: GatewayTopics, owner: str) -> None:
    """`owner`: this worker's name, put on its grants."""

    async def one(event: Any) -> None:
        answer = await handle(event.value, table, publisher, owner)
        if isinstance(answer, Grant):
            log.debug("capacity.granted endpoint=%s worker=%s window=%d requests=%d tokens=%d",
                      answer.endpoint, answer.worker, answer.window, answer.requests, answer.tokens)
        else:
            log.info("capacity.paused endpoint=%s until=%.3f", answer.endpoint, answer.until)

    # Only workers write this topic: a record it cannot read is a bug, not input.
    register_ordered(app, topics.provider_capacity, "capacity", one, (ValueError, TypeError, KeyError))


def register_listener(app: faust.App, settings: Settings, topics: GatewayTopics, leases: LeaseClient) -> None:
    """Every worker reads `gateway-provider-grants` whole, from its end at start, with a consumer of its
    own (no group: each worker must see every record), and hands each record to its lease client."""

    @app.service
    class GrantsListener(mode.Service):
        @mode.Service.task
        async def _read(self) -> None:
            name = topics.provider_grants.get_topic_name()
            while not self.should_stop:
                consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(settings.broker_url), group_id=None,
                                            enable_auto_commit=False, client_id=f"{settings.app_id}-grants",
                                            metadata_max_age_ms=int(settings.metadata_max_age_seconds * 1000))
                try:
                    await topics.provider_grants.maybe_declare()
                    await consumer.start()
                    partition = TopicPartition(name, 0)
                    consumer.assign([partition])
                    await consumer.seek_to_end(partition)
                    await consumer.position(partition)
                    leases.listening.set()
                    while not self.should_stop:
                        batch = await consumer.getmany(partition, timeout_ms=500)
                        for record in batch.get(partition, ()):
                            leases.on_answer(record.value)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Asks wait (and time out) meanwhile; grants sent while nobody read are lost: their
                    # capacity lapses with its window, it is never spent twice.
                    leases.listening.clear()
                    log.exception("capacity.listener_failed (reading again in 1 s)")
                    await asyncio.sleep(1.0)
                finally:
                    await consumer.stop()
