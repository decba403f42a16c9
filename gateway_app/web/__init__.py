"""Operator web views (faust web): health, readiness, and per-agent profile and usage."""
