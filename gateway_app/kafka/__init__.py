"""Our layer over faust's Kafka consumer: in-order, gap-free delivery per partition."""
