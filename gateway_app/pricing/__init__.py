"""Cost of a provider call from a versioned price table kept in the repository."""
