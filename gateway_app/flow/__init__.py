"""The message flow inside a worker: in-order acks, per-agent lanes, per-conversation turns, outputs."""
