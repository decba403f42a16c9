"""The stream topology: intake (inputs -> gateway-agent-events) and the processor (join, limits, calls)."""
