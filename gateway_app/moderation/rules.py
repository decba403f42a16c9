"""Which checks run on a message and what a check that does not pass does: the profile's rules with the
active signals' effects on top. Pure (the check settings are cached per profile version)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable

from gateway_app.contract.events import AgentProfile, ErrorCode
from gateway_app.contract.moderation import CheckRule
from gateway_app.moderation.checks import CheckSettings
from gateway_app.moderation.steering import Steering

# The stronger action wins when several checks fail at once.
ACTIONS = ("pass", "flag", "mask", "regenerate", "replace", "block")  # weakest first
ACTION_ORDER = {action: rank for rank, action in enumerate(ACTIONS)}
STRICT_CHECKS = ("wordlist", "pii", "refusal", "empty")  # turned on (blocking) by an `inappropriate` low signal
CODES = {
    "wordlist": ErrorCode.MODERATION_WORDLIST, "pii": ErrorCode.MODERATION_PII,
    "repetition": ErrorCode.MODERATION_REPETITION, "empty": ErrorCode.MODERATION_EMPTY,
    "refusal": ErrorCode.MODERATION_REFUSAL, "truncated": ErrorCode.MODERATION_TRUNCATED,
    "language": ErrorCode.MODERATION_LANGUAGE, "too_long": ErrorCode.MODERATION_TOO_LONG,
    "provider": ErrorCode.MODERATION_PROVIDER,
}


def output_rules(profile: AgentProfile, steering: Steering) -> dict[str, CheckRule]:
    rules = {name: rule for name, rule in profile.moderation.output_checks.items() if name != "provider"}
    if steering.repetition is not None and ACTION_ORDER[rules.get("repetition", CheckRule()).action] < 3:
        rules["repetition"] = CheckRule(action="regenerate", then="flag")
    if steering.strict is not None:
        for name in {*rules, *STRICT_CHECKS}:
            rule = rules.get(name, CheckRule())
            if ACTION_ORDER[rule.action] < ACTION_ORDER["mask"]:
                rules[name] = rule.model_copy(update={"action": "block", "then": "block"})
    if steering.replace_failed is not None:
        rules = {name: rule if rule.action == "pass" else rule.model_copy(update={"action": "replace", "then": "replace"})
                 for name, rule in rules.items()}
    return rules


def input_rules(profile: AgentProfile) -> dict[str, CheckRule]:
    return {name: rule for name, rule in profile.moderation.input_checks.items() if name != "provider"}


def strongest(actions: Iterable[str]) -> str:
    return max(actions, key=ACTION_ORDER.__getitem__, default="pass")


class SettingsCache:
    """`CheckSettings` per profile version (building one compiles its word list and patterns)."""

    def __init__(self, words: Iterable[str] = (), patterns: Iterable[str] = (), capacity: int = 1024) -> None:
        self.global_layer = {"extra_words": list(words), "extra_patterns": list(patterns)}
        self.capacity = capacity
        self._cache: OrderedDict[tuple[str, int], CheckSettings] = OrderedDict()

    def for_profile(self, profile: AgentProfile) -> CheckSettings:
        key = (profile.agent_id, profile.version)
        cached = self._cache.get(key)
        if cached is None:
            spec = profile.moderation
            layer = {"extra_words": spec.words, "extra_patterns": spec.patterns,
                     "repetition_threshold": spec.repetition_threshold, "repetition_window": spec.repetition_last_n,
                     "max_chars": spec.max_chars}
            cached = self._cache[key] = CheckSettings.from_config(self.global_layer, layer)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return cached
