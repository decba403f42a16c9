"""Find installed plugins through Python entry points, once at start.

- `ai_gateway.providers`: `name = "package.module:Class"`, a `Provider`. Registered by name without
  importing it (providers load lazily, in a thread, and a failed load is retried by the next call).
- `ai_gateway.stages`: `name = "package.module:Class"` (or an instance or factory), a `StagePlugin`.
  Loaded and checked at start: its position, time limit and failure mode must be declared correctly.

A plugin that cannot be loaded, declares nonsense, or takes a built-in name is listed with its error
(`gateway plugins`, `/health`) and left out; the worker still starts. A profile naming it is refused.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Iterable

from gateway_app.contract.events import ErrorCode
from gateway_app.plugins.api import MAX_TIME_LIMIT_SECONDS, POSITIONS, StagePlugin, StageSpec
from gateway_app.providers import registry

log = logging.getLogger(__name__)
PROVIDER_GROUP = "ai_gateway.providers"
STAGE_GROUP = "ai_gateway.stages"
MAX_STAGE_NAME = 64
BUILTIN_PROVIDERS = frozenset(registry.PROVIDERS)  # taken before any plugin registers


@dataclass(frozen=True)
class PluginInfo:
    group: str
    name: str
    target: str                  # "module:attr" as the package declared it
    distribution: str | None
    loaded: bool
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "name": self.name, "target": self.target, "distribution": self.distribution,
                "loaded": self.loaded, "error": self.error, **self.details}


@dataclass
class Plugins:
    """What discovery found: the stage specs by name, and a line per entry point for operators."""

    stages: dict[str, StageSpec] = field(default_factory=dict)
    listing: list[PluginInfo] = field(default_factory=list)

    def stage(self, name: str) -> StageSpec | None:
        return self.stages.get(name)

    def is_known_stage(self, name: str) -> bool:
        return name in self.stages

    def check_stage(self, name: str, options: dict[str, Any]) -> tuple[ErrorCode, str] | None:
        """Why a profile may not name this stage with these options (checked at intake), or None."""
        spec = self.stages.get(name)
        if spec is None:
            installed = ", ".join(sorted(self.stages)) or "none"
            return ErrorCode.UNKNOWN_STAGE, f"stage {name!r} is not installed (installed: {installed})"
        problem = spec.check_options(options)
        return None if problem is None else (ErrorCode.INVALID_STAGE_OPTIONS, problem)

    def as_list(self) -> list[dict[str, Any]]:
        return [info.as_dict() for info in self.listing]


def _distribution(point: EntryPoint) -> str | None:
    dist = getattr(point, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else None


def discover(points_of=entry_points) -> Plugins:
    plugins = Plugins()
    providers, stages = _unambiguous(points_of(group=PROVIDER_GROUP)), _unambiguous(points_of(group=STAGE_GROUP))
    for point, clash in providers:
        plugins.listing.append(_refused(PROVIDER_GROUP, point, clash) if clash else _register_provider(point))
    for point, clash in stages:
        if clash:
            plugins.listing.append(_refused(STAGE_GROUP, point, clash))
            continue
        info, spec = _load_stage(point)
        plugins.listing.append(info)
        if spec is not None:
            plugins.stages[spec.name] = spec
    for info in plugins.listing:
        if info.error:
            log.error("plugin.unusable group=%s name=%s error=%s", info.group, info.name, info.error)
        else:
            log.info("plugin.found group=%s name=%s target=%s", info.group, info.name, info.target)
    return plugins


def _unambiguous(points: Iterable[EntryPoint]) -> list[tuple[EntryPoint, str | None]]:
    """Entry points by name, each with why it is refused: two packages giving one name would make the
    choice depend on install order, so neither is used (a profile naming it is refused at intake)."""
    points = sorted(points, key=lambda p: (p.name, p.value))
    by_name: dict[str, list[EntryPoint]] = {}
    for point in points:
        by_name.setdefault(point.name, []).append(point)
    result = []
    for point in points:
        twins = by_name[point.name]
        clash = None
        if len(twins) > 1:
            clash = "name also registered by " + ", ".join(
                f"{t.value} ({_distribution(t)})" for t in twins if t is not point) + "; neither is used"
        result.append((point, clash))
    return result


def _refused(group: str, point: EntryPoint, error: str) -> PluginInfo:
    return PluginInfo(group=group, name=point.name, target=point.value, distribution=_distribution(point),
                      loaded=False, error=error)


def _register_provider(point: EntryPoint) -> PluginInfo:
    info = dict(group=PROVIDER_GROUP, name=point.name, target=point.value, distribution=_distribution(point))
    if point.name in BUILTIN_PROVIDERS:
        return PluginInfo(**info, loaded=False, error=f"{point.name!r} is a built-in provider")
    if ":" not in point.value:
        return PluginInfo(**info, loaded=False, error="target is not 'module:Class'")
    registry.PROVIDERS[point.name] = point.value
    return PluginInfo(**info, loaded=True)


def _load_stage(point: EntryPoint) -> tuple[PluginInfo, StageSpec | None]:
    info = dict(group=STAGE_GROUP, name=point.name, target=point.value, distribution=_distribution(point))
    try:
        loaded = point.load()
        plugin = loaded() if isinstance(loaded, type) else loaded
        spec = check_stage(point.name, plugin)
    except Exception as exc:  # a broken plugin is reported, never fatal
        return PluginInfo(**info, loaded=False, error=f"{type(exc).__name__}: {exc}"[:300]), None
    details = {"position": spec.position, "time_limit_seconds": spec.time_limit_seconds,
               "failure_mode": spec.failure_mode}
    return PluginInfo(**info, loaded=True, details=details), spec


def check_stage(entry_name: str, plugin: Any) -> StageSpec:
    """The plugin's declarations, checked; raises ValueError saying what is wrong."""
    if not isinstance(plugin, StagePlugin):
        raise ValueError("not a stage: needs name, position, time_limit_seconds, failure_mode and async run()")
    if not inspect.iscoroutinefunction(plugin.run):
        raise ValueError("run must be an async function (async def run(self, stage_input))")
    name = plugin.name
    if name != entry_name:
        raise ValueError(f"declares name {name!r} under entry point {entry_name!r}")
    if not name or len(name) > MAX_STAGE_NAME:
        raise ValueError(f"name must have 1 to {MAX_STAGE_NAME} characters")
    if plugin.position not in POSITIONS:
        raise ValueError(f"position {plugin.position!r} is not one of {', '.join(POSITIONS)}")
    limit = plugin.time_limit_seconds
    if not isinstance(limit, (int, float)) or not 0 < limit <= MAX_TIME_LIMIT_SECONDS:
        raise ValueError(f"time_limit_seconds must be above 0 and at most {MAX_TIME_LIMIT_SECONDS}, got {limit!r}")
    if plugin.failure_mode not in ("closed", "open"):
        raise ValueError(f"failure_mode {plugin.failure_mode!r} is not 'closed' or 'open'")
    return StageSpec(name, plugin.position, float(limit), plugin.failure_mode, plugin)


def installed_stage_names(plugins: Plugins) -> Iterable[str]:
    return sorted(plugins.stages)
