"""Integration fixtures: one real Kafka broker per test session (a broker that does not start fails
the run; nothing here skips), and isolated deployments of gateway workers as subprocesses."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from devtools.kafka_local import KafkaBroker
from devtools.workers import Deployment, Worker


@pytest.fixture(scope="session")
def kafka():
    broker = KafkaBroker()
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(broker.work_dir, ignore_errors=True)


class Cluster:
    """Workers of one deployment; all stopped at teardown."""

    def __init__(self, deployment: Deployment, tmp: Path) -> None:
        self.deployment = deployment
        self.tmp = tmp
        self.workers: list[Worker] = []

    def worker(self, index: int | None = None) -> Worker:
        worker = Worker(self.deployment, self.tmp, len(self.workers) if index is None else index)
        self.workers.append(worker)
        return worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


def make_cluster(kafka: KafkaBroker, tmp: Path, partitions: int = 4, static_membership: bool = False,
                 **env: str) -> Cluster:
    name = f"gw-{uuid.uuid4().hex[:8]}"
    return Cluster(Deployment(kafka.bootstrap, name, partitions=partitions, env=env,
                              static_membership=static_membership), tmp)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def cluster_factory(kafka, tmp_path, request):
    clusters: list[Cluster] = []

    def factory(partitions: int = 4, static_membership: bool = False, **env: str) -> Cluster:
        cluster = make_cluster(kafka, tmp_path, partitions, static_membership, **env)
        clusters.append(cluster)
        return cluster

    yield factory
    for cluster in clusters:
        cluster.stop()
    if getattr(request.node, "call_failed", False):  # CI keeps only the console: show what the workers said
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            for cluster in clusters:
                for worker in cluster.workers:
                    print(f"\n--- {worker.log_path.name} (last 80 lines) ---\n{worker.tail(80)}")
