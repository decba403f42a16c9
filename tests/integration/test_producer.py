"""The producer keeps metadata for every topic it sent to, on a real broker (the mechanism is described
in gateway_app.kafka.producer): without that, records queued for a topic whose metadata dropped out
never find a leader and a flush never returns."""

from __future__ import annotations

import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.drivers import aiokafka as faust_aiokafka

from gateway_app.app import faust_app
from gateway_app.kafka.transport import GatewayTransport
from gateway_app.settings import Settings


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()


async def knows_old_topic_after_sending_to_a_new_one(kafka, tmp_path, transport_cls) -> bool:
    suffix = uuid.uuid4().hex[:8]
    old, new = f"old-{suffix}", f"new-{suffix}"
    app = faust_app(Settings(app_id=f"producer-{suffix}", broker_url=f"kafka://{kafka.bootstrap}",
                             data_dir=tmp_path / suffix))
    producer = transport_cls(app.conf.broker_consumer, app).create_producer()
    await producer.start()
    try:
        # As faust declares a table's changelog: creating it refreshes metadata for all topics.
        await producer.create_topic(old, 2, 1)
        await producer.send(old, b"k", b"before", partition=None, timestamp=None, headers=None)
        await create_topic(kafka.bootstrap, new)  # a topic this producer has not seen yet
        await producer.send(new, b"k", b"v", partition=None, timestamp=None, headers=None)
        client = producer._producer.client
        await client.force_metadata_update()
        known = client.cluster.partitions_for_topic(old) is not None
        await producer.send(old, b"k", b"after", partition=None, timestamp=None, headers=None)
        await producer.flush()
        return known
    finally:
        await producer.stop()


async def test_the_gateway_producer_keeps_every_topic_it_sent_to(kafka, tmp_path):
    assert await knows_old_topic_after_sending_to_a_new_one(kafka, tmp_path, GatewayTransport)


async def test_control_faust_stock_producer_loses_the_older_topic(kafka, tmp_path):
    # What the gateway's producer fixes; if this starts failing, aiokafka fixed it upstream.
    assert not await knows_old_topic_after_sending_to_a_new_one(kafka, tmp_path, faust_aiokafka.Transport)
