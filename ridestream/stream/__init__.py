"""The Kafka edge, one job per module; the commit order is documented once, in `loop`.

- `loop`: the consume-process-produce loop (`StreamLoop`) and the retried commit;
- `messages`: `Received` and `Outgoing`;
- `codec`: decoding and validating a record; `deadletter`: the dead letter of a poison record;
- `produce`: handing messages to the producer in order; `fastpath`: kafka-python's accumulator
  filled directly and the numpy murmur2 partitioner;
- `client`: the client seam (what the package asks of a consumer and a producer);
  `client_config`: every client setting, translated for librdkafka; `confluent`: confluent-kafka
  (librdkafka) behind the seam; `clients`: consumer and producer factories of the chosen client;
  `admin`: topic creation;
- `signals`: stop on SIGTERM/SIGINT; `errors`: Kafka connection errors in one line;
- `redaction`: secrets blanked in kafka-python's logged configurations.
"""
