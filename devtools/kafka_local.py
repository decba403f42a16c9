"""Local single-node Apache Kafka (KRaft) broker for development and tests.

There is no Docker on the development machines, so the broker runs as a plain
JVM process from jars that Maven resolves once into a cache directory (see
``devtools/kafka/pom.xml``). Each :class:`KafkaBroker` gets its own free ports
and work directory, so several can run side by side.

Usage::

    with KafkaBroker() as broker:
        ...  # connect to broker.bootstrap

CLI: ``python -m devtools.kafka_local {fetch,start,stop,is-up} ...``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TypeVar

KAFKA_VERSION = "3.9.1"
READY_TOPIC = "__gateway_ready_probe"
CACHE_ENV = "GATEWAY_KAFKA_CACHE"
HOST = "127.0.0.1"

_HERE = Path(__file__).resolve().parent
REPO_ROOT = _HERE.parent
POM_PATH = _HERE / "kafka" / "pom.xml"

_T = TypeVar("_T")

# Loggers that flood kafka.log at INFO on every start/partition creation.
_NOISY_LOGGERS = (
    "kafka.request.logger",
    "kafka.network.RequestChannel$",
    "kafka.authorizer.logger",
    "state.change.logger",
    "kafka.server.KafkaConfig",  # dumps every config value on each start
    "kafka.server.DelayedOperationPurgatory$ExpiredOperationReaper",
    "kafka.server.ClientQuotaManager$ThrottledChannelReaper",
    "kafka.server.NodeToControllerRequestThread",
    "kafka.raft.TimingWheelExpirationService$ExpiredOperationReaper",
    "kafka.coordinator.group.GroupMetadataManager",
    "org.apache.kafka.queue.KafkaEventQueue",
    "kafka.log.LogCleaner",
    "kafka.log.LogManager",
    "kafka.log.UnifiedLog$",
    "kafka.cluster.Partition",
    "kafka.server.ReplicaFetcherManager",
    "kafka.server.ReplicaAlterLogDirsManager",
    "org.apache.kafka.storage.internals.log",
    "org.apache.kafka.common.utils.AppInfoParser",
    "org.apache.kafka.common.config.AbstractConfig",
    "org.apache.kafka.clients",
)


class BrokerStartError(RuntimeError):
    """The broker (or its jars) could not be made ready; message has diagnostics."""


# --------------------------------------------------------------------------- helpers


def default_cache_dir() -> Path:
    """Cache root for the broker jars; env override lets CI share one across checkouts."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return REPO_ROOT / ".cache" / "kafka" / KAFKA_VERSION


def _has_kafka_jar(lib: Path) -> bool:
    """A lib dir counts as complete only if the broker jar made it in."""
    return lib.is_dir() and any(lib.glob("kafka_2.13-*.jar"))


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Return ``<cache_dir>/lib`` with the broker classpath, running Maven only if needed.

    Maven writes into a temporary sibling directory which is renamed into place,
    so an interrupted download never leaves a half-filled lib dir that looks valid.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    lib = cache / "lib"
    if _has_kafka_jar(lib):
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lib.tmp-", dir=cache))
    try:
        _run_maven(tmp)
        _install_lib(tmp, lib)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return lib


def _run_maven(out_dir: Path) -> None:
    """Resolve the runtime classpath into ``out_dir``; surface Maven's output on failure."""
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM_PATH),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={out_dir}",
    ]
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise BrokerStartError("`mvn` not found on PATH; it is needed to fetch Kafka jars") from exc
    if res.returncode != 0 or not _has_kafka_jar(out_dir):
        raise BrokerStartError(
            f"Maven failed to fetch Kafka jars (exit {res.returncode}):\n"
            f"{res.stdout}\n{res.stderr}"
        )


def _install_lib(tmp: Path, lib: Path) -> None:
    """Atomically move a freshly fetched lib dir into place, tolerating a concurrent winner."""
    if lib.exists() and not _has_kafka_jar(lib):
        shutil.rmtree(lib, ignore_errors=True)  # stale/incomplete leftovers
    try:
        os.rename(tmp, lib)
    except OSError:
        if not _has_kafka_jar(lib):  # someone else finished first: fine; else real error
            raise


def free_port() -> int:
    """Ask the kernel for an unused port (small race until Kafka binds it; fine for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    """Cheap liveness check: can we complete a TCP handshake?"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages (empty marker if absent)."""
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"<{path.name} not readable>"
    return "\n".join(content[-lines:]) or f"<{path.name} empty>"


def _new_cluster_id() -> str:
    """Kafka cluster ids are 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid``, never one starting with "-": the storage tool's
    argument parser would read it as an option (about 1 id in 64 would fail to format).
    """
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _run_blocking(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion even if the caller is itself inside an event loop.

    ``start()`` is synchronous but may be called from async fixtures, where
    ``asyncio.run`` is forbidden on the current thread, so use a worker thread then.
    """
    async def main() -> _T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


class _WrongCluster(Exception):
    """The port answered, but with another cluster's id (not our broker)."""


async def _probe(bootstrap: str, timeout: float, cluster_id: str) -> None:
    """Prove *our* broker serves clients: right cluster id, and a produce succeeds."""
    await _check_cluster_id(bootstrap, timeout, cluster_id)
    await _produce_once(bootstrap, timeout)


async def _check_cluster_id(bootstrap: str, timeout: float, cluster_id: str) -> None:
    """Guard against a stray broker on our port passing the readiness probe."""
    from aiokafka.admin import AIOKafkaAdminClient  # lazy: CLI fetch/is-up need no aiokafka

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        found = (await asyncio.wait_for(admin.describe_cluster(), timeout)).get("cluster_id")
    finally:
        await admin.close()
    if found != cluster_id:
        raise _WrongCluster(f"{bootstrap} reports cluster id {found!r}, expected {cluster_id!r}")


async def _produce_once(bootstrap: str, timeout: float) -> None:
    """Send one record to an auto-created topic: metadata, leadership and log all work."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), retry_backoff_ms=100
    )
    try:
        await asyncio.wait_for(producer.start(), timeout)
        await asyncio.wait_for(producer.send_and_wait(READY_TOPIC, b"ready"), timeout)
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- broker


class KafkaBroker:
    """A single-node KRaft broker+controller running as a child JVM process."""

    def __init__(
        self, port: int | None = None, work_dir: Path | None = None, heap_mb: int = 512
    ) -> None:
        self.port = port if port is not None else free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.work_dir = Path(work_dir) if work_dir is not None else Path(
            tempfile.mkdtemp(prefix="gateway-kafka-")
        )
        self.heap_mb = heap_mb
        self.cluster_id = _new_cluster_id()
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- public properties

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port`` form used by the app's configuration."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        """PID (== process group id) of the JVM, or None if never started/stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the JVM process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # ---- paths

    @property
    def _props_path(self) -> Path:
        return self.work_dir / "server.properties"

    @property
    def _log4j_path(self) -> Path:
        return self.work_dir / "log4j.properties"

    @property
    def _data_dir(self) -> Path:
        return self.work_dir / "data"

    # ---- lifecycle

    def start(self, timeout: float = 90) -> None:
        """Launch the broker and block until a producer can write to it.

        Raises BrokerStartError (with log tails) if the JVM dies or the deadline
        passes; the process is killed first so no half-started broker leaks.
        """
        if self.running:
            raise BrokerStartError(f"broker already running (pid {self.pid})")
        deadline = time.monotonic() + timeout
        lib = ensure_jars()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._check_ports_free()
        self._write_configs()
        self._format_storage(lib)
        self._spawn(lib)
        try:
            self._wait_ready(deadline)
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = 20) -> None:
        """Graceful shutdown (SIGTERM to the group), escalating to SIGKILL after ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                proc.wait()
        self._proc = None

    def kill(self) -> None:
        """Hard-kill the broker (simulates a crash in fault-injection tests)."""
        proc = self._proc
        if proc is None:
            return
        self._signal_group(signal.SIGKILL)
        proc.wait()
        self._proc = None

    def detach(self) -> int:
        """Give up ownership: the JVM keeps running after this object/process is gone.

        Used by ``start --detach``; returns the pid (== process group) to stop it later.
        """
        if not self.running:
            raise BrokerStartError("no running broker to detach")
        assert self._proc is not None
        pid, self._proc = self._proc.pid, None
        return pid

    def restart(self, timeout: float = 90) -> None:
        """Stop and start again on the same ports and data dir (data survives)."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> KafkaBroker:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- internals

    def _signal_group(self, sig: signal.Signals) -> None:
        """Signal the whole process group so no JVM helper survives its parent."""
        assert self._proc is not None
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass

    def _server_properties(self) -> dict[str, str]:
        """Single-node KRaft settings tuned for fast start and low memory."""
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self._data_dir),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "1000",
            "num.partitions": "8",
            "auto.create.topics.enable": "true",
            "log.cleaner.dedupe.buffer.size": "8388608",
            # After kill() the controller rejects the new incarnation until the old
            # broker session expires (default 9s); keep crash-restart tests quick.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
        }

    def _log4j_properties(self) -> dict[str, str]:
        """Broker logs go to a file (INFO) so failures can be diagnosed without noise."""
        props = {
            "log4j.rootLogger": "INFO, file",
            "log4j.appender.file": "org.apache.log4j.FileAppender",
            "log4j.appender.file.File": str(self.work_dir / "kafka.log"),
            "log4j.appender.file.Append": "true",
            "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
        }
        props.update({f"log4j.logger.{name}": "WARN" for name in _NOISY_LOGGERS})
        return props

    def _write_configs(self) -> None:
        """(Re)write config files each start; ports/paths are fixed for this instance."""
        _write_properties(self._props_path, self._server_properties())
        _write_properties(self._log4j_path, self._log4j_properties())

    def _java_cmd(self, lib: Path, *jvm_opts: str) -> list[str]:
        """Common JVM invocation prefix (log4j config + broker classpath)."""
        return [
            "java", *jvm_opts,
            f"-Dlog4j.configuration=file:{self._log4j_path}",
            "-cp", f"{lib}/*",
        ]

    def _check_ports_free(self) -> None:
        """Refuse to start if something already listens on our ports.

        Otherwise the readiness probe could succeed against that other process
        while our JVM is still starting (or about to die on a bind error).
        """
        for port in (self.port, self.controller_port):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
                try:
                    s.bind((HOST, port))
                except OSError as exc:
                    raise BrokerStartError(f"port {HOST}:{port} is already in use: {exc}") from exc

    def _format_storage(self, lib: Path) -> None:
        """Format the KRaft log dir once; later starts (restart) reuse the existing data."""
        existing = _read_properties(self._data_dir / "meta.properties").get("cluster.id")
        if existing:
            self.cluster_id = existing  # reused work dir: readiness must match its id
            return
        cmd = self._java_cmd(lib) + [
            "kafka.tools.StorageTool", "format",
            "-t", self.cluster_id, "-c", str(self._props_path), "-g",
        ]
        try:
            res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        except OSError as exc:
            raise BrokerStartError(f"cannot run `java` (OpenJDK 17 needed): {exc}") from exc
        if res.returncode != 0:
            raise BrokerStartError(
                f"kafka StorageTool format failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}"
            )

    def _spawn(self, lib: Path) -> None:
        """Start the JVM in its own session so stop/kill can target its process group."""
        heap = f"{self.heap_mb}m"
        cmd = self._java_cmd(lib, f"-Xmx{heap}", f"-Xms{heap}") + ["kafka.Kafka", str(self._props_path)]
        with open(self.work_dir / "kafka.out", "ab") as out:
            try:
                self._proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BrokerStartError(f"cannot run `java` (OpenJDK 17 needed): {exc}") from exc

    def _fail(self, reason: str) -> BrokerStartError:
        """Build an error carrying the log tails, since the JVM's reason is only in there."""
        return BrokerStartError(
            f"{reason} (bootstrap {self.bootstrap}, work_dir {self.work_dir})\n"
            f"--- kafka.log (last 40 lines) ---\n{_tail(self.work_dir / 'kafka.log')}\n"
            f"--- kafka.out (last 40 lines) ---\n{_tail(self.work_dir / 'kafka.out')}"
        )

    def _check_alive(self) -> None:
        """Fail fast instead of waiting out the timeout when the JVM already died."""
        assert self._proc is not None
        code = self._proc.poll()
        if code is not None:
            raise self._fail(f"kafka process exited with code {code} during startup")

    def _wait_ready(self, deadline: float) -> None:
        """Wait for the TCP listener, then for a successful produce."""
        while not port_open(HOST, self.port, timeout=0.5):
            self._check_alive()
            if time.monotonic() >= deadline:
                raise self._fail("timed out waiting for the broker port")
            time.sleep(0.1)
        _run_blocking(lambda: self._probe_until(deadline))

    async def _probe_until(self, deadline: float) -> None:
        """Retry the produce probe until it succeeds, the JVM dies or time runs out."""
        last: BaseException | None = None
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(f"timed out waiting for a successful produce (last error: {last!r})")
            try:
                await _probe(self.bootstrap, min(10.0, remaining), self.cluster_id)
                return
            except _WrongCluster as exc:
                raise self._fail(str(exc)) from exc
            except Exception as exc:  # any client error just means "not ready yet"
                last = exc
                await asyncio.sleep(0.2)


def _read_properties(path: Path) -> dict[str, str]:
    """Minimal reader for Kafka's own key=value files (meta.properties); {} if absent."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _write_properties(path: Path, props: dict[str, str]) -> None:
    """Write a Java .properties file (values here never need escaping beyond backslashes)."""
    lines = [f"{k}={v.replace(chr(92), chr(92) * 2)}" for k, v in props.items()]
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- CLI


def _pid_is_kafka(pid: int) -> bool:
    """Guard against a recycled PID: only signal it if it still looks like our broker."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return b"kafka.Kafka" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def stop_detached(work_dir: Path, timeout: float = 20) -> bool:
    """Stop a broker started with ``start --detach``; True if one was running."""
    pid_file = Path(work_dir) / "broker.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip())
    was_running = _pid_is_kafka(pid)
    if was_running:
        _terminate_group(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return was_running


def _terminate_group(pgid: int, timeout: float) -> None:
    """SIGTERM a (non-child) process group, polling for exit, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if not _pid_is_kafka(pgid):
                return
            time.sleep(0.1)


def _cmd_fetch(args: argparse.Namespace) -> int:
    print(ensure_jars())
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    broker = KafkaBroker(port=args.port, work_dir=args.work_dir, heap_mb=args.heap_mb)
    broker.start(timeout=args.timeout)
    print(f"kafka up at {broker.bootstrap} (work dir {broker.work_dir})", file=sys.stderr)
    if args.detach:
        (broker.work_dir / "broker.pid").write_text(f"{broker.detach()}\n")
        (broker.work_dir / "broker.port").write_text(f"{broker.port}\n")
        print(broker.bootstrap, flush=True)
        return 0
    return _run_foreground(broker)


def _run_foreground(broker: KafkaBroker) -> int:
    """Serve until SIGINT/SIGTERM (or the broker dies), then shut down cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(broker.bootstrap, flush=True)
    while not stop.wait(0.5):
        if not broker.running:
            print("kafka exited unexpectedly; see kafka.log", file=sys.stderr)
            return 1
    broker.stop()
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    if stop_detached(args.work_dir):
        print("stopped", file=sys.stderr)
    else:
        print("no running broker for that work dir", file=sys.stderr)
    return 0


def _cmd_is_up(args: argparse.Namespace) -> int:
    host, _, port = args.bootstrap.rpartition(":")
    return 0 if port_open(host or HOST, int(port), timeout=2.0) else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.kafka_local", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="download the broker jars into the cache").set_defaults(fn=_cmd_fetch)
    s = sub.add_parser("start", help="start a broker")
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--work-dir", type=Path, default=None)
    s.add_argument("--heap-mb", type=int, default=512)
    s.add_argument("--timeout", type=float, default=90)
    s.add_argument("--detach", action="store_true", help="leave it running; write broker.pid")
    s.set_defaults(fn=_cmd_start)
    t = sub.add_parser("stop", help="stop a broker started with --detach")
    t.add_argument("--work-dir", type=Path, required=True)
    t.set_defaults(fn=_cmd_stop)
    u = sub.add_parser("is-up", help="exit 0 if host:port accepts TCP within 2s")
    u.add_argument("--bootstrap", required=True)
    u.set_defaults(fn=_cmd_is_up)
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; BrokerStartError becomes a readable message and exit code 2."""
    args = _parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except BrokerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
