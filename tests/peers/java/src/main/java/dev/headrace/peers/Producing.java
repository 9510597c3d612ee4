package dev.headrace.peers;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;

/** The idempotent and the transactional producer, each read back by a consumer. */
final class Producing {
    private Producing() {}

    /** RECORDS keyed records with enable.idempotence, then every partition read from the start. */
    static Map<String, Object> idempotent(Scenario s) throws Exception {
        Properties config = s.producerConfig();
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        config.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5");
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        Map<Integer, List<Long>> acknowledged = new TreeMap<>();
        List<TopicPartition> partitions = new ArrayList<>();
        try (KafkaProducer<String, String> producer = s.producer(config)) {
            s.step("produce");
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int index = 0; index < s.records; index++) {
                sent.add(producer.send(new ProducerRecord<>(s.topic, "key-" + index, "value-" + index)));
            }
            producer.flush();
            for (Future<RecordMetadata> future : sent) {
                RecordMetadata metadata = future.get();
                acknowledged.computeIfAbsent(metadata.partition(), p -> new ArrayList<>())
                        .add(metadata.offset());
            }
            for (PartitionInfo info : producer.partitionsFor(s.topic)) {
                partitions.add(new TopicPartition(s.topic, info.partition()));
            }
        }
        s.step("read back");
        List<String> values = readAll(s, partitions, "read_uncommitted", s.records);
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("acknowledged", acknowledged);
        result.put("partitions", partitions.size());
        result.put("values", values);
        return result;
    }

    /**
     * Three transactions on TOPIC (committed, aborted, committed), read with read_committed and
     * read_uncommitted; then a consume-transform-produce transaction that reads the committed
     * records in GROUP and writes them upper-cased to TOPIC-out with the group's offsets.
     */
    static Map<String, Object> transactional(Scenario s) throws Exception {
        Properties config = s.producerConfig();
        config.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-txn-" + s.group);
        config.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "30000");
        List<TopicPartition> partitions = new ArrayList<>();
        try (KafkaProducer<String, String> producer = s.producer(config)) {
            s.step("initTransactions");
            producer.initTransactions();
            String[][] batches = {{"committed", "3"}, {"aborted", "2"}, {"committed-again", "2"}};
            for (String[] batch : batches) {
                s.step("transaction " + batch[0]);
                producer.beginTransaction();
                for (int index = 0; index < Integer.parseInt(batch[1]); index++) {
                    producer.send(new ProducerRecord<>(s.topic, "k" + index, batch[0] + "-" + index));
                }
                producer.flush();
                if (batch[0].equals("aborted")) producer.abortTransaction();
                else producer.commitTransaction();
            }
            for (PartitionInfo info : producer.partitionsFor(s.topic)) {
                partitions.add(new TopicPartition(s.topic, info.partition()));
            }
        }
        s.step("read_committed");
        List<String> committed = readAll(s, partitions, "read_committed", 5);
        s.step("read_uncommitted");
        List<String> uncommitted = readAll(s, partitions, "read_uncommitted", 7);

        s.step("consume-transform-produce");
        Properties consuming = s.consumerConfig(s.group);
        consuming.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        Properties transforming = s.producerConfig();
        transforming.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-txn-transform-" + s.group);
        List<String> transformed = new ArrayList<>();
        Map<TopicPartition, OffsetAndMetadata> offsets = new LinkedHashMap<>();
        try (KafkaConsumer<String, String> consumer = s.consumer(consuming);
             KafkaProducer<String, String> producer = s.producer(transforming)) {
            producer.initTransactions();
            consumer.subscribe(List.of(s.topic));
            s.until("the group reads the 5 committed records", () -> transformed.size() >= 5, () -> {
                for (ConsumerRecord<String, String> record : consumer.poll(Scenario.POLL)) {
                    transformed.add(record.value().toUpperCase());
                    offsets.put(new TopicPartition(record.topic(), record.partition()),
                            new OffsetAndMetadata(record.offset() + 1));
                }
            });
            producer.beginTransaction();
            for (String value : transformed) {
                producer.send(new ProducerRecord<>(s.topic + "-out", value));
            }
            producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
            producer.commitTransaction();
        }
        s.step("read the transformed records");
        List<String> output = readAll(s, List.of(new TopicPartition(s.topic + "-out", 0)),
                "read_committed", transformed.size());
        Map<String, Long> groupOffsets = new TreeMap<>();
        try (var admin = s.admin()) {
            var fetched = Scenario.await(
                    admin.listConsumerGroupOffsets(s.group).partitionsToOffsetAndMetadata());
            fetched.forEach((tp, meta) -> groupOffsets.put(tp.toString(), meta.offset()));
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("read_committed", committed);
        result.put("read_uncommitted", uncommitted);
        result.put("transformed", output);
        result.put("group_offsets", groupOffsets);
        return result;
    }

    /** Every record of {@code partitions} from the start until {@code expected} were read. */
    static List<String> readAll(
            Scenario s, List<TopicPartition> partitions, String isolation, int expected) {
        Properties config = s.consumerConfig(null);
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        List<String> values = new ArrayList<>();
        Set<TopicPartition> atEnd = new HashSet<>();
        try (KafkaConsumer<String, String> consumer = s.consumer(config)) {
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            s.until(expected + " records (" + isolation + ")", () -> values.size() >= expected
                    && atEnd.size() == partitions.size(), () -> {
                for (ConsumerRecord<String, String> record : consumer.poll(Scenario.POLL)) {
                    values.add(record.value());
                }
                for (TopicPartition partition : partitions) {
                    if (consumer.position(partition) >= ends.get(partition)) atEnd.add(partition);
                }
            });
            // Anything past the expected count (a duplicate) would arrive in this last poll.
            for (ConsumerRecord<String, String> record : consumer.poll(Scenario.POLL)) {
                values.add(record.value());
            }
        }
        return values;
    }
}
