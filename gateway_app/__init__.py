"""ai-gateway: an AI gateway built as a Faust stream-processing application on Kafka."""
