"""The gateway's one typed settings object, read from `GATEWAY_*` environment variables.

Every field names its variable (prefix `GATEWAY_` + the field name in capitals); the README's
configuration table lists them all. Provider keys keep the SDKs' own variable names and live in the
provider modules, not here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway_app.resilience.retry import RetryPolicy


class TopicNames(BaseSettings):
    """Kafka topic names; each can be overridden, e.g. `GATEWAY_TOPIC_MESSAGES=chat.ai-messages`."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_TOPIC_", frozen=True, extra="ignore")

    messages: str = "ai-message-created"
    profile_created: str = "agent-profile-created"
    profile_updated: str = "agent-profile-updated"
    profile_deleted: str = "agent-profile-deleted"
    replies: str = "ai-message-reply"
    billing: str = "ai-billing-events"
    dlq: str = "ai-message-dlq"
    # Internal: every input re-keyed by agent id, so a profile and the messages for it share a partition.
    agent_events: str = "gateway-agent-events"


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

    # Provider calls.
    max_in_flight: int = Field(256, ge=1)
    max_pending_messages: int = Field(10_000, ge=1)
    call_timeout_seconds: float = Field(60.0, gt=0)
    # Retries of retriable provider failures (429, 408, 5xx, connection errors, timeouts).
    retry_max_attempts: int = Field(4, ge=1)
    retry_base_delay_seconds: float = Field(0.25, ge=0)
    retry_max_delay_seconds: float = Field(8.0, ge=0)
    retry_after_cap_seconds: float = Field(20.0, ge=0)
    message_deadline_seconds: float = Field(90.0, gt=0)  # all attempts of one message; below the rebalance timeout

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts, base_delay=self.retry_base_delay_seconds,
            max_delay=self.retry_max_delay_seconds, retry_after_cap=self.retry_after_cap_seconds,
            deadline=self.message_deadline_seconds,
        )

    # Input validation.
    max_content_chars: int = Field(32_000, ge=1)
    max_metadata_bytes: int = Field(16_384, ge=0)

    # Redelivery: how many answered messages each partition remembers.
    dedupe_per_partition: int = Field(20_000, ge=100)

    # Faust/consumer tuning.
    commit_interval_seconds: float = Field(1.0, gt=0)
    broker_session_timeout_seconds: float = Field(30.0, gt=0)
    rebalance_timeout_seconds: float = Field(120.0, gt=0)
    rocksdb_block_cache_mb: int = Field(8, ge=1)
    web_tables_enabled: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
