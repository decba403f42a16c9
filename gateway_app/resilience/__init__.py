"""Pure resilience logic for provider calls: retry schedules and circuit breakers (no I/O)."""
