package dev.headrace.peers;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * What kafka-transactions.sh does to a hanging transaction, through the Admin client: list it
 * (ListTransactions), describe it (DescribeTransactions) and its partition's producers
 * (DescribeProducers), then abort it at the partition (WriteTxnMarkers), which frees the last
 * stable offset a read_committed consumer stops at.
 */
final class TransactionAdmin {
    private TransactionAdmin() {}

    static Map<String, Object> run(Scenario s) throws Exception {
        String transactionalId = "java-hanging-" + s.group;
        TopicPartition partition = new TopicPartition(s.topic, 0);
        Properties config = s.producerConfig();
        config.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        config.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        Map<String, Object> result = new LinkedHashMap<>();
        try (KafkaProducer<String, String> producer = s.producer(config); Admin admin = s.admin()) {
            s.step("an open transaction");
            producer.initTransactions();
            producer.beginTransaction();
            for (int index = 0; index < 3; index++) {
                producer.send(new ProducerRecord<>(s.topic, 0, "k" + index, "open-" + index));
            }
            producer.flush();
            result.put("stable_end_before", stableEnd(s, partition));

            s.step("listTransactions");
            String listedState = null;
            for (TransactionListing listing : Scenario.await(admin.listTransactions().all())) {
                if (listing.transactionalId().equals(transactionalId)) {
                    listedState = listing.state().toString();
                }
            }
            result.put("listed_state", listedState);

            s.step("describeTransactions");
            TransactionDescription description = Scenario.await(
                    admin.describeTransactions(List.of(transactionalId)).all()).get(transactionalId);
            result.put("described_state", description.state().toString());
            List<String> partitions = new ArrayList<>();
            description.topicPartitions().forEach(tp -> partitions.add(tp.toString()));
            result.put("described_partitions", partitions);

            s.step("describeProducers");
            List<ProducerState> producers = Scenario.await(
                    admin.describeProducers(List.of(partition)).partitionResult(partition))
                    .activeProducers();
            ProducerState open = producers.stream()
                    .filter(state -> state.producerId() == description.producerId())
                    .findFirst().orElseThrow();
            result.put("transaction_start_offset",
                    open.currentTransactionStartOffset().orElse(-1));
            result.put("last_sequence", open.lastSequence());

            s.step("abortTransaction");
            Scenario.await(admin.abortTransaction(new AbortTransactionSpec(
                    partition, open.producerId(), (short) open.producerEpoch(),
                    open.coordinatorEpoch().orElse(0))).all());
            result.put("stable_end_after", stableEnd(s, partition));
            ProducerState after = Scenario.await(
                    admin.describeProducers(List.of(partition)).partitionResult(partition))
                    .activeProducers().stream()
                    .filter(state -> state.producerId() == description.producerId())
                    .findFirst().orElseThrow();
            result.put("transaction_start_offset_after",
                    after.currentTransactionStartOffset().orElse(-1));
            result.put("read_committed", Producing.readAll(
                    s, List.of(partition), "read_committed", 0));
        }
        return result;
    }

    private static long stableEnd(Scenario s, TopicPartition partition) {
        Properties config = s.consumerConfig(null);
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (KafkaConsumer<String, String> consumer = s.consumer(config)) {
            return consumer.endOffsets(List.of(partition)).get(partition);
        }
    }
}
