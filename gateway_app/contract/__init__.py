"""The event contract (v1): models, decoding of raw input, and deterministic output ids."""
