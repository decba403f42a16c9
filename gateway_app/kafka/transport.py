"""The app's Kafka transport: faust's aiokafka driver with the consumer and producer fixed here."""

from faust.transport.drivers import aiokafka as faust_aiokafka

from gateway_app.kafka.consumer import OrderedConsumer
from gateway_app.kafka.producer import TrackingProducer


class GatewayTransport(faust_aiokafka.Transport):
    Consumer = OrderedConsumer
    Producer = TrackingProducer
