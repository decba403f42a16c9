"""Developer tooling (local Kafka launcher etc.); not part of the shipped app."""
