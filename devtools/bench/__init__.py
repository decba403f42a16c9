"""`make bench`: the gateway measured side by side with a raw aiokafka passthrough on one local broker."""
