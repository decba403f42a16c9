"""What the platform's active signals do to a message: pure.

Defaults per signal and severity (a profile overrides any of them under `moderation.on_signal`):

| signal | low | medium | high |
|---|---|---|---|
| `boring` | livelier instruction, temperature +0.1 | +0.2 | +0.3 |
| `engagement` | shorter replies that invite an answer (max_tokens x0.5) | end with a question | longer replies allowed (max_tokens x1.5) |
| `repetitive` | do-not-repeat instruction, penalty 0.3, the repetition check (regenerate once, then flag) | penalty 0.6 | penalty 1.0 |
| `inappropriate` | respectful instruction, every local check on the reply blocks (strict) | a reply failing any check is replaced by the fallback reply (blocked without one) | the agent is muted in the room |

Temperatures stay within the provider's range; penalties (frequency and presence) go only to providers
that have them (OpenAI, Azure, local, Cohere; Anthropic: the instruction alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents_tables.moderation import ActiveSignal, strongest
from gateway_app.contract.events import AgentProfile, Severity, SignalKind
from gateway_app.contract.moderation import SignalEffect

LIVELY = "Make your replies livelier: vary your wording, add a concrete detail, avoid stock phrases."
SHORT = "Keep replies short (two or three sentences) and end with a question that invites an answer."
QUESTION = "End your reply with a question that invites an answer."
LONG = "The user is engaged: longer, more detailed replies are welcome."
NO_REPEAT = "Do not repeat what you said earlier in this conversation; say something new."
RESPECT = "Keep the conversation respectful and do not engage with offensive content."

L, M, H = Severity.LOW, Severity.MEDIUM, Severity.HIGH
DEFAULTS: dict[SignalKind, dict[Severity, SignalEffect]] = {
    SignalKind.BORING: {s: SignalEffect(instruction=LIVELY, temperature_delta=d) for s, d in ((L, .1), (M, .2), (H, .3))},
    SignalKind.ENGAGEMENT: {L: SignalEffect(instruction=SHORT, max_tokens_factor=0.5),
                            M: SignalEffect(instruction=QUESTION),
                            H: SignalEffect(instruction=LONG, max_tokens_factor=1.5)},
    SignalKind.REPETITIVE: {s: SignalEffect(instruction=NO_REPEAT, penalty=p) for s, p in ((L, .3), (M, .6), (H, 1.0))},
    SignalKind.INAPPROPRIATE: {L: SignalEffect(instruction=RESPECT, strict=True),
                               M: SignalEffect(instruction=RESPECT, replace_failed=True),
                               H: SignalEffect(mute=True)},
}
TEMPERATURE_MAX = {"anthropic": 1.0, "cohere": 1.0}  # others: 2.0
WITH_PENALTIES = frozenset({"openai", "azure", "local", "cohere"})


@dataclass(frozen=True)
class Steering:
    signals: tuple[ActiveSignal, ...] = ()       # the strongest active signal of each kind
    instructions: tuple[str, ...] = ()
    temperature_delta: float = 0.0
    penalty: float | None = None
    max_tokens_factor: float = 1.0
    mute: ActiveSignal | None = None
    strict: ActiveSignal | None = None
    replace_failed: ActiveSignal | None = None
    repetition: ActiveSignal | None = None       # the repetition check runs (regenerate once, then flag)
    effects: dict[str, str] = field(default_factory=dict)  # signal id -> what it did (for events)


NOTHING = Steering()


def effect(profile: AgentProfile, kind: SignalKind, severity: Severity) -> SignalEffect:
    """The default effect with the profile's overrides (fields it sets) on top."""
    base = DEFAULTS[kind][severity]
    override = profile.moderation.on_signal.get(kind, {}).get(severity)
    if override is None:
        return base
    return base.model_copy(update=override.model_dump(exclude_unset=True))


def steer(signals: tuple[ActiveSignal, ...], profile: AgentProfile) -> Steering:
    if not signals:
        return NOTHING
    chosen = strongest(signals)
    instructions, delta, penalty, factor = [], 0.0, None, 1.0
    flags: dict[str, ActiveSignal | None] = {"mute": None, "strict": None, "replace_failed": None, "repetition": None}
    effects = {}
    for kind, signal in chosen.items():
        how = effect(profile, kind, signal.severity)
        if how.instruction:
            instructions.append(how.instruction)
        delta += how.temperature_delta or 0.0
        penalty = max(penalty or 0.0, how.penalty) if how.penalty is not None else penalty
        factor *= how.max_tokens_factor or 1.0
        for name in ("mute", "strict", "replace_failed"):
            if getattr(how, name):
                flags[name] = signal
        if kind is SignalKind.REPETITIVE:
            flags["repetition"] = signal
        effects[signal.signal_id] = label(how)
    return Steering(tuple(chosen.values()), tuple(instructions), delta, penalty, factor, **flags, effects=effects)


def label(how: SignalEffect) -> str:
    """The action a signal's effect is recorded under."""
    if how.mute:
        return "mute"
    if how.strict:
        return "block"
    if how.replace_failed:
        return "replace"
    return "steer"


def temperature(provider: str, base: float, delta: float) -> float:
    return round(min(TEMPERATURE_MAX.get(provider, 2.0), max(0.0, base + delta)), 3)


def penalty_for(provider: str, penalty: float | None) -> float | None:
    return penalty if provider in WITH_PENALTIES else None
