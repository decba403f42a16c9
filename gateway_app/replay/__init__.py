"""Replays (`gateway replay ...`, `gateway dlq replay ...`; docs/replays.md): re-running a range of a
topic without touching the live consumer group.

- `ranges`, `state`, `answered`, `profiles`, `costs`: pure parts (bounds and per-partition plans, the
  resume state, which replies count as answered, profiles as of a time, estimates and the spend cap);
- `reader`, `writer`, `sources`: the broker (assign + seek with no group id; acknowledged sends);
- `run`: what the range modes share (open or resume a run, the plan, progress, the batch loop);
- `reprocess`, `shadow`, `reprice`, `compare`, `dlq`: one module per command;
- `command`: the command lines.
"""
