"""A real Apache Kafka (KRaft, broker and controller in one JVM per node), no Docker: one node,
or a cluster of nodes on loopback ports (`cluster_nodes`, `start_cluster`).

The jars come from Maven Central through `pom.xml` beside this file and are cached in
`~/.cache/ridestream/kafka-<version>/`. The broker runs detached, binds to loopback only, and
keeps everything under `BrokerSettings.data_dir`:

    server.properties   written on every start
    data/               partition logs and KRaft metadata (formatted once)
    server.log          the broker's own log (see log4j2.properties)
    broker.out          the JVM's stdout and stderr
    broker.pid          pid of the running broker
    broker.version      Kafka version of the jars it was started from

Retention: the default 7-day `log.retention.hours` counts from each record's timestamp. Our
producers leave the record timestamp unset, so the producer client stamps the send time and the
replayed 2021 event times live only in the payloads: nothing is deleted at once. A producer that
sets old timestamps must create its topics with `retention.ms=-1`.

Modules: `runtime` (Java and the jars), `config` (server.properties), `process` (start,
status, stop). This package exports their public names.
"""

from ridestream.kafka_broker.config import server_properties
from ridestream.kafka_broker.process import (
    BrokerStatus,
    bootstrap_servers,
    cluster_nodes,
    free_ports,
    kill,
    start,
    start_cluster,
    status,
    stop,
    stop_cluster,
    temporary_broker,
    wait_until_serving,
)
from ridestream.kafka_broker.runtime import (
    KAFKA_VERSION,
    POM,
    BrokerError,
    default_jar_dir,
    find_java,
    jar_kafka_version,
    java_major_version,
    resolve_jars,
)

__all__ = [
    "KAFKA_VERSION",
    "POM",
    "BrokerError",
    "BrokerStatus",
    "bootstrap_servers",
    "cluster_nodes",
    "default_jar_dir",
    "find_java",
    "free_ports",
    "jar_kafka_version",
    "java_major_version",
    "kill",
    "resolve_jars",
    "server_properties",
    "start",
    "start_cluster",
    "status",
    "stop",
    "stop_cluster",
    "temporary_broker",
    "wait_until_serving",
]
