"""What the gateway tells operators about itself besides its logs: metrics and traces."""
