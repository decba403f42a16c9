"""The gateway's one typed settings object, read from `GATEWAY_*` environment variables.

Every field names its variable (prefix `GATEWAY_` + the field name in capitals); the README's
configuration table lists them all. Provider keys keep the SDKs' own variable names and live in the
provider modules, not here.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path


from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway_app.resilience.breaker import BreakerPolicy
from gateway_app.resilience.endpoints import Caps, parse_caps
from gateway_app.resilience.retry import RetryPolicy


class TopicNames(BaseSettings):
    """Kafka topic names; each can be overridden, e.g. `GATEWAY_TOPIC_MESSAGES=chat.ai-messages`."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_TOPIC_", frozen=True, extra="ignore")

    messages: str = "ai-message-created"
    profile_created: str = "agent-profile-created"
    profile_updated: str = "agent-profile-updated"
    profile_deleted: str = "agent-profile-deleted"
    replies: str = "ai-message-reply"
    reply_chunks: str = "ai-message-reply-chunks"
    billing: str = "ai-billing-events"
    dlq: str = "ai-message-dlq"
    tool_results: str = "ai-tool-results"
    conversation_cleared: str = "conversation-cleared"
    moderation_signals: str = "moderation-signals"
    moderation_events: str = "ai-moderation-events"
    audio: str = "ai-message-audio"  # spoken replies too large for the reply, in chunks
    # Internal: every input re-keyed by agent id, so a profile and the messages for it share a partition.
    agent_events: str = "gateway-agent-events"
    # Internal: room activity and agent-less signals keyed by room id, where the room -> agents index lives.
    room_events: str = "gateway-room-events"
    # Internal: lease asks and 429 pauses keyed by provider endpoint, to the endpoint's owner.
    provider_capacity: str = "gateway-provider-capacity"
    # Internal, one partition read whole by every worker: the owners' grants and pause announcements.
    provider_grants: str = "gateway-provider-grants"


class Settings(BaseSettings):
    """Runtime configuration; frozen so that no code can change it after start-up."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    app_id: str = "ai-gateway"
    broker_url: str = "kafka://127.0.0.1:9092"
    data_dir: Path = Path(".local/gateway-data")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    topic_partitions: int = Field(8, ge=1, le=1024)
    topic_replication: int = Field(1, ge=1)
    topics: TopicNames = Field(default_factory=TopicNames)

    # Rate-limit windows (tumbling, per agent).
    rate_window_seconds: float = Field(60.0, gt=0)
    agent_backlog_max: int = Field(1000, ge=1)
    profile_wait_seconds: float = Field(30.0, ge=0)
    # Profile sync over HTTP (pipeline.profile_service): a message whose agent has no profile also asks
    # GET {url}/agents/{agent id}, within its profile wait; unset, only profile events bring profiles.
    profile_service_url: str | None = Field(None, min_length=1)
    profile_service_timeout_seconds: float = Field(5.0, gt=0)  # one request, whole answer
    # A credential reference (env:, file:, enc:, vault:, aws-sm:, azure-kv:), sent as `Bearer <secret>`.
    profile_service_auth: str | None = Field(None, min_length=1)

    # Provider calls.
    max_in_flight: int = Field(256, ge=1)
    max_pending_messages: int = Field(10_000, ge=1)
    call_timeout_seconds: float = Field(60.0, gt=0)         # one attempt, whole answer
    # Providers loaded (SDK imported, lazy SDK modules too) before the worker reports ready, so no first
    # call imports on the event loop; comma-separated, empty: each loads at its first call.
    preload_providers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["openai", "azure", "local", "anthropic", "cohere"])
    first_token_timeout_seconds: float = Field(20.0, gt=0)  # one streamed attempt, until its first event
    # The HTTP stack under the openai and anthropic SDKs (both support either): `aiohttp` (the SDKs'
    # `DefaultAioHttpClient`) costs about a third less CPU per call than their default `httpx` (measured
    # in `make bench --only levers`); `httpx` is the SDKs' own default.
    provider_http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    # Retries of retriable provider failures (429, 408, 5xx, connection errors, timeouts).
    retry_max_attempts: int = Field(4, ge=1)
    retry_base_delay_seconds: float = Field(0.25, ge=0)
    retry_max_delay_seconds: float = Field(8.0, ge=0)
    retry_after_cap_seconds: float = Field(20.0, ge=0)
    message_deadline_seconds: float = Field(90.0, gt=0)  # all attempts of one message; below the rebalance timeout

    # Circuit breaker per provider endpoint (provider + model + base URL).
    breaker_consecutive_failures: int = Field(5, ge=1)
    breaker_failure_rate: float = Field(0.5, gt=0, le=1)
    breaker_window: int = Field(20, ge=1)
    breaker_min_calls: int = Field(10, ge=1)
    breaker_open_seconds: float = Field(15.0, gt=0)
    breaker_half_open_probes: int = Field(1, ge=1)
    # Per provider or provider:model caps per minute, as JSON: {"openai": {"rpm": 500, "tpm": 200000}}.
    provider_limits: dict[str, dict[str, int]] = Field(default_factory=dict)
    # How long a 429 without Retry-After pauses its endpoint.
    rate_limit_pause_seconds: float = Field(1.0, ge=0)
    # `cluster`: the caps and 429 pauses hold across all workers (each endpoint's owner grants leases,
    # gateway_app.resilience.capacity); `worker`: each worker enforces the caps alone, as if it were the only one.
    provider_limits_scope: Literal["cluster", "worker"] = "cluster"
    # The caps' tumbling window, aligned to the wall clock: rpm/tpm are counted per this many seconds.
    provider_cap_window_seconds: float = Field(60.0, gt=0)
    # One lease: this share of a window's cap (at least one request); more asks, less capacity left unused.
    provider_lease_share: float = Field(0.1, gt=0, le=1)
    # An ask the owner has not answered in this long is asked again (its owner may be moving).
    provider_lease_timeout_seconds: float = Field(2.0, gt=0)
    # Agents consulting agents (profile `collaborators`, pipeline.collaboration): how deep a chain may go
    # (1: the room's agent may consult, its collaborators may not), how many consultation rounds one
    # answer may take per agent, and how old a question may be when its collaborator reads it (older:
    # answered `collaborator_timeout` without a call, so the asker answers alone).
    collaboration_max_depth: int = Field(2, ge=1, le=8)
    collaboration_max_rounds: int = Field(3, ge=1, le=16)
    collaboration_timeout_seconds: float = Field(60.0, gt=0)

    @field_validator("moderation_patterns", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        """Patterns contain commas: a JSON list, or one pattern."""
        if isinstance(value, str):
            return json.loads(value) if value.lstrip().startswith("[") else [value]
        return value

    @field_validator("web_read_tokens", "web_admin_tokens", "moderation_words", "preload_providers",
                     "audio_url_allowlist", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`GATEWAY_WEB_READ_TOKENS=a,b` as well as a JSON list."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value

    @model_validator(mode="after")
    def _deadline_below_rebalance(self) -> "Settings":
        # A message still being retried when the group rebalances is cancelled and redone from scratch.
        if self.message_deadline_seconds >= self.rebalance_timeout_seconds:
            raise ValueError("GATEWAY_MESSAGE_DEADLINE_SECONDS must be below GATEWAY_REBALANCE_TIMEOUT_SECONDS")
        parse_caps(self.provider_limits)
        return self

    def audio_hosts(self) -> frozenset[str]:
        """The audio URL allow-list as the SSRF check compares it (lower case)."""
        return frozenset(host.lower() for host in self.audio_url_allowlist)

    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            consecutive_failures=self.breaker_consecutive_failures, failure_rate=self.breaker_failure_rate,
            window=self.breaker_window, min_calls=self.breaker_min_calls, open_seconds=self.breaker_open_seconds,
            half_open_probes=self.breaker_half_open_probes,
        )

    def provider_caps(self) -> dict[str, Caps]:
        return parse_caps(self.provider_limits)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts, base_delay=self.retry_base_delay_seconds,
            max_delay=self.retry_max_delay_seconds, retry_after_cap=self.retry_after_cap_seconds,
            deadline=self.message_deadline_seconds,
        )

    # Input validation.
    max_content_chars: int = Field(32_000, ge=1)
    max_metadata_bytes: int = Field(16_384, ge=0)

    # Voice (docs/voice.md). Input audio, decoded or fetched, at most this many bytes (inline base64 is
    # capped at 256 KiB, contract.decode.INLINE_AUDIO_MAX_BYTES: its forwarded record must fit 1 MB).
    audio_max_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=25 * 1024 * 1024)  # OpenAI's own limit: 25 MB
    # Hosts `audio.url` may name (`host` = any port, or `host:port`; comma-separated). Empty: URLs refused.
    audio_url_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    audio_fetch_timeout_seconds: float = Field(10.0, gt=0, le=60)  # one fetch, whole body
    # A spoken reply at most this big goes inline (`audio_b64`); larger goes to `ai-message-audio` in
    # chunks of audio_chunk_bytes. Both below the producer's 1 MB request size once base64-encoded.
    audio_inline_max_bytes: int = Field(256 * 1024, ge=0, le=704 * 1024)
    audio_chunk_bytes: int = Field(512 * 1024, ge=1024, le=704 * 1024)
    transcription_model: str = Field("whisper-1", min_length=1)  # profile voice.transcription_model overrides
    speech_max_chars: int = Field(4096, ge=1, le=4096)  # longer replies are not spoken (OpenAI's input limit)

    # Redelivery: how many answered messages each partition remembers.
    dedupe_per_partition: int = Field(20_000, ge=100)
    # Conversations (profiles with `context`): what one room keeps at most, whatever its profile asks;
    # the oldest whole exchanges go first. Idle rooms and expired cache entries are looked for this often.
    conversation_max_turns: int = Field(200, ge=1, le=10_000)
    conversation_max_bytes: int = Field(262_144, ge=1024)
    sweep_interval_seconds: float = Field(300.0, gt=0)
    # Response cache (profiles with `cache`): entries kept per partition (the oldest go first), and the
    # largest answer cached.
    cache_entries_per_partition: int = Field(10_000, ge=10)
    cache_max_entry_bytes: int = Field(65_536, ge=1024)
    # Server-Sent Events (`GET /rooms/{room_id}/stream`): open streams per worker (more get 503), and
    # how often an idle stream gets a keep-alive comment.
    sse_max_streams: int = Field(100, ge=1)
    sse_keepalive_seconds: float = Field(15.0, gt=0)
    # Moderation. An agent counts as active in a room (an agent-less signal reaches it) this long after
    # its last message there; the intake says so to the room index at most once per announce interval
    # per agent and room. Moderation events carry the text checked only when include_content is on.
    room_active_seconds: float = Field(86_400.0, gt=0)
    room_announce_seconds: float = Field(600.0, ge=0)
    moderation_include_content: bool = False
    # Added to the shipped word list (comma-separated, or a JSON list) and to every profile's patterns
    # (a JSON list of regular expressions, or one).
    moderation_words: Annotated[list[str], NoDecode] = Field(default_factory=list)
    moderation_patterns: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Decoded profiles kept in memory per worker (the table stays the source of truth).
    profile_cache_size: int = Field(10_000, ge=0)
    # Decoded usage rows kept in memory per worker (two per agent and day in use); 0: decode at each read.
    usage_cache_rows: int = Field(4096, ge=0)

    # Faust/consumer tuning.
    commit_interval_seconds: float = Field(1.0, gt=0)
    # How long the producer waits to batch records into one request: fewer, larger requests cost the
    # broker and the worker far less CPU; each output waits at most this long.
    producer_linger_ms: float = Field(0.0, ge=0)
    broker_session_timeout_seconds: float = Field(30.0, gt=0)
    # How soon a worker notices a topic that did not exist when it subscribed (e.g. two workers starting
    # at once, one creating the topics): until then that topic's partitions are assigned to nobody.
    metadata_max_age_seconds: float = Field(10.0, gt=0)
    rebalance_timeout_seconds: float = Field(120.0, gt=0)
    # Static group membership (Kafka's group.instance.id): a stable name per worker, e.g. a StatefulSet's
    # pod name. A worker that comes back within the session timeout takes back its own partitions without
    # a group-wide rebalance; a dead one's partitions wait for the session timeout. Unset: dynamic.
    instance_id: str | None = Field(None, min_length=1, max_length=249)
    # A graceful stop (SIGTERM) lets messages past admission finish for at most this long, then commits.
    # A stop takes up to this plus ~10 s (messages already publishing finish) plus a commit and closing:
    # keep the orchestrator's kill timeout above that (k8s/ sets terminationGracePeriodSeconds 120).
    shutdown_grace_seconds: float = Field(20.0, ge=0)
    rocksdb_block_cache_mb: int = Field(8, ge=1)
    web_tables_enabled: bool = False

    # Operator views. Bearer tokens, several each so they rotate without downtime: comma-separated
    # (or a JSON list). `/health` and `/ready` stay open; every other view needs a read token, anything
    # that changes state an admin token. A worker bound to a non-loopback address with no tokens
    # refuses to start unless web_auth is "off".
    web_read_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    web_admin_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    web_auth: Literal["on", "off"] = "on"

    # Per-agent credentials. The keyring that `enc:` references are encrypted under (key-encryption
    # keys, the first encrypts, all decrypt): its value, or `file:/path` of a file holding it.
    keyring: SecretStr | None = None
    # The keyring's entries wrapped by a KMS key (envelope encryption): `aws-kms:<key id or ARN>`. Each
    # entry is then `kid:<base64 of the KMS ciphertext of a 32-byte data key>`, unwrapped at start.
    kms_key: str | None = Field(None, min_length=1)
    # How long a resolved secret is kept in memory before it is read again from its store.
    secret_cache_seconds: float = Field(300.0, ge=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
