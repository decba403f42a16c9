"""Plugins: installed packages that add providers and stages (see `api` for what a plugin writes)."""

from gateway_app.plugins.api import (
    Answer,
    Block,
    FailureMode,
    Modify,
    Pass,
    Position,
    Regenerate,
    Replace,
    StageInput,
    StagePlugin,
    Verdict,
)

__all__ = ["Answer", "Block", "FailureMode", "Modify", "Pass", "Position", "Regenerate", "Replace",
           "StageInput", "StagePlugin", "Verdict"]
