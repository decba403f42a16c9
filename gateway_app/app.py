"""Assembles one worker: the faust app, its topics and tables, the pipeline, the agents and the web views."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import faust
import mode

from agents_tables import answering, capacity, intake, rooms, sweep
from agents_tables.tables import GatewayTables, Stores, define_tables
from gateway_app.credentials.resolver import CredentialResolver
from gateway_app.forwarding import InputForwarder
from gateway_app.kafka.recovery import GatewayTableManager
from gateway_app.kafka.transport import GatewayTransport
from gateway_app.moderation import checks
from gateway_app.moderation.provider_moderation import ProviderModeration
from gateway_app.observability.metrics import GatewayMetrics
from gateway_app.pipeline import profile_service
from gateway_app.pipeline.caller import Caller
from gateway_app.pipeline.dispatcher import Dispatcher
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.turns import Turns
from gateway_app.plugins.discovery import Plugins, discover
from gateway_app.pricing.prices import current_table
from gateway_app.providers.registry import ProviderPool, is_known
from gateway_app.publisher import Publisher
from gateway_app.resilience.endpoints import Endpoints
from gateway_app.resilience.leases import LeaseClient, worker_name
from gateway_app.settings import Settings
from gateway_app.topics import GatewayTopics, declare_outputs, define_topics
from gateway_app.web import views

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gateway:
    app: faust.App
    settings: Settings
    topics: GatewayTopics
    tables: GatewayTables
    services: Services
    dispatcher: Dispatcher


class GatewayApp(faust.App):
    """faust's app with one more step when it stops: `before_stop` (the dispatcher's drain) runs while
    the consumer, producer and tables still work, so a graceful stop finishes what it started."""

    before_stop: Callable[[], Awaitable[None]] | None = None

    async def on_stop(self) -> None:
        if self.before_stop is not None:
            await self.before_stop()
        await super().on_stop()


def faust_app(settings: Settings) -> faust.App:
    app = GatewayApp(
        settings.app_id,
        broker=settings.broker_url,
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        web_enabled=True,
        web_tables_enabled=settings.web_tables_enabled,
        web_router_enabled=False,  # faust's /router views: partition maps and worker addresses, no auth
        # Our acks are held until a message is fully handled; waiting for them at a rebalance would
        # stall it for as long as a message waits for a profile or a rate window. Revoked work is
        # cancelled instead and redelivered (see agents.processor).
        stream_wait_empty=False,
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.broker_session_timeout_seconds,
        broker_rebalance_timeout=settings.rebalance_timeout_seconds,
        consumer_group_instance_id=settings.instance_id,
        consumer_auto_offset_reset="earliest",
        consumer_metadata_max_age_ms=int(settings.metadata_max_age_seconds * 1000),
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000,
        autodiscover=False,
        TableManager=GatewayTableManager,  # restores changelog rows in batches
    )
    # In-order, gap-free delivery per partition, and a producer that never loses a topic's metadata.
    app.transport = GatewayTransport(app.conf.broker_consumer, app)
    return app


COUNTERS = ("answered", "rejected", "blocked", "redelivered", "absorbed", "profiles_applied", "profiles_stale",
            "stages_failed_open", "turns_appended", "conversations_cleared", "cache_hits", "cache_misses",
            "cache_saved_microusd", "cache_expired", "signals_applied", "signals_expired", "moderation_flagged",
            "moderation_blocked", "consultations_asked", "consultations_refused", "consultations_failed",
            "consultations_stale")


async def graceful_stop(app: faust.App, dispatcher: Dispatcher, grace_seconds: float) -> None:
    """Stop reading, let the messages in progress finish (bounded), and commit what is done: a graceful
    restart then redelivers nothing that was answered (and what is redelivered anyway is absorbed)."""
    started = time.monotonic()
    if app.consumer is not None:
        app.consumer.stop_flow()
    finished, cancelled = await dispatcher.drain(grace_seconds)
    committed = await app.consumer.commit() if app.consumer is not None else False
    log.info("worker.drained finished=%d cancelled=%d committed=%s seconds=%.2f", finished, cancelled,
             bool(committed), time.monotonic() - started)


def freeze_long_lived() -> None:
    """Move every object alive now out of the collector's sight: what a worker imports and builds before
    traffic lives as long as the process, and a full collection that scans it stalls every call in flight.
    The default providers' SDKs leave about 160 000 tracked objects: a full collection over them took
    88 ms on the bench machine, and a worker under load ran one every 10 s or so (docs/benchmarks.md,
    "Collector pauses")."""
    gc.collect()
    gc.freeze()


def lease_client(settings: Settings, publisher: Publisher) -> LeaseClient | None:
    if settings.provider_limits_scope != "cluster":
        return None
    return LeaseClient(publisher.to_capacity_owner, settings.provider_cap_window_seconds,
                       settings.provider_lease_share, settings.provider_lease_timeout_seconds)


def build_services(settings: Settings, tables: GatewayTables, publisher: Publisher, providers: ProviderPool,
                   plugins: Plugins) -> Services:
    endpoints = Endpoints(settings.breaker_policy(), settings.provider_caps(),
                          window_seconds=settings.provider_cap_window_seconds)
    caller = Caller(settings, providers, endpoints, asyncio.Semaphore(settings.max_in_flight),
                    metrics=publisher.metrics, leases=lease_client(settings, publisher))
    stores = Stores.over(tables, settings)
    counters, credentials = dict.fromkeys(COUNTERS, 0), CredentialResolver.from_settings(settings)
    profiles_over_http = profile_service.from_settings(settings, publisher, counters, credentials, is_known,
                                                       plugins.check_stage)
    return Services(settings, stores, Turns(), caller, publisher, current_table(), plugins, counters, credentials,
                    ProviderModeration(timeout=settings.call_timeout_seconds), metrics=publisher.metrics,
                    profile_service=profiles_over_http)


def create_gateway(settings: Settings, plugins: Plugins | None = None) -> Gateway:
    plugins = discover() if plugins is None else plugins  # before topics: provider plugins join the registry
    app = faust_app(settings)
    topics = define_topics(app, settings)
    tables = define_tables(app, settings.topic_partitions, settings.rocksdb_block_cache_mb)
    publisher = Publisher(topics, app.producer, GatewayMetrics())  # the worker's one metrics object (/metrics)
    providers = ProviderPool(timeout=settings.call_timeout_seconds, http_transport=settings.provider_http_transport)
    services = build_services(settings, tables, publisher, providers, plugins)
    dispatcher = Dispatcher(services)
    intake.register(app, InputForwarder(settings, publisher, is_known, plugins.check_stage), topics)
    answering.register(app, dispatcher, topics)
    rooms.register(app, services.stores, publisher, topics)
    sweep.register(app, services.stores, publisher, settings.sweep_interval_seconds)
    owner = services.caller.leases.worker if services.caller.leases is not None else worker_name()
    capacity.register(app, tables.provider_capacity, publisher, topics, owner)  # every worker may own an endpoint
    if services.caller.leases is not None:
        capacity.register_listener(app, settings, topics, services.caller.leases)
    views.register(app, settings, topics, services, dispatcher)
    app.before_stop = lambda: graceful_stop(app, dispatcher, settings.shutdown_grace_seconds)

    @app.task
    async def warm_up() -> None:
        # The output topics exist before /ready says so: a client that reads them (an SSE stream) right
        # after would otherwise assign partitions its metadata does not know yet, and see nothing until
        # its next metadata refresh.
        await declare_outputs(topics)
        # One thing at a time, each in a thread: two threads importing at once can meet halfway in a
        # shared dependency. The default moderation lists compile at start; the language model (about
        # 90 MB) only when a profile uses the `language` check (see pipeline.stages.moderation).
        await asyncio.to_thread(checks.warm_up, with_language=False)
        await providers.preload(settings.preload_providers)
        freeze_long_lived()  # what warm-up imported (the SDKs, the word lists) too
        services.warmed.set()  # /ready waits for it

    @app.service
    class ProviderClients(mode.Service):
        """Closes the providers' pooled connections when the worker stops."""

        async def on_stop(self) -> None:
            await providers.aclose()
            await services.provider_moderation.aclose()
            if services.profile_service is not None:
                await services.profile_service.aclose()

    return Gateway(app, settings, topics, tables, services, dispatcher)
