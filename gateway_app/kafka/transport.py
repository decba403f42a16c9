"""The app's Kafka transport: faust's aiokafka driver with the consumer and producer fixed here."""

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.drivers.aiokafka import server_list
from faust.utils.urls import urllist

from gateway_app.kafka.consumer import OrderedConsumer
from gateway_app.kafka.producer import TrackingProducer


class GatewayTransport(faust_aiokafka.Transport):
    Consumer = OrderedConsumer
    Producer = TrackingProducer


def bootstrap_servers(broker_url: str) -> list[str]:
    """`kafka://h1:9092;h2:9092` as aiokafka's host:port list, converted as the worker's own clients are
    (for the plain aiokafka clients a worker runs beside faust's: SSE streams, the grants listener)."""
    return server_list(urllist(broker_url, default_scheme="kafka"), 9092)
