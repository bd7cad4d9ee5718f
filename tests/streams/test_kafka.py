"""streams.kafka: the platform's clients read what a feed's client may write, with Kafka's semantics."""

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.kafka import consumer_config, end_offsets


def test_what_a_transactional_producer_aborted_is_never_read(settings, topic_factory):
    topic = topic_factory(partitions=1)
    feed = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "transactional.id": f"feed-{uuid.uuid4()}",
                     "compression.type": "zstd"})
    feed.init_transactions(10)
    for outcome, values in (("abort", [b"aborted-1", b"aborted-2"]), ("commit", [b"kept-1", b"kept-2"])):
        feed.begin_transaction()
        for value in values:
            feed.produce(topic, value=value, partition=0)
        feed.flush(10)
        feed.abort_transaction(10) if outcome == "abort" else feed.commit_transaction(10)

    reader = Consumer(consumer_config(settings, group_id=f"test-{uuid.uuid4()}"))
    reader.assign([TopicPartition(topic, 0, 0)])
    seen = []
    try:
        for _ in range(50):
            msg = reader.poll(0.2)
            if msg is not None and not msg.error():
                seen.append(msg.value())
            if len(seen) >= 2:
                break
    finally:
        reader.close()

    assert seen == [b"kept-1", b"kept-2"]
    # The end counts the control records too: 4 data records and 2 transaction markers.
    assert end_offsets(settings.kafka_bootstrap_servers, [TopicPartition(topic, 0)]) == {(topic, 0): 6}
