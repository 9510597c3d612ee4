package dev.headrace.peers;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;

/**
 * The Admin client over topics (create, describe, partitions, delete), configs (describe,
 * incremental alter), offsets (list, delete records) and consumer groups (list, describe,
 * offsets: list, alter, delete; delete the group). Topics TOPIC-a (3 partitions) and TOPIC-b.
 */
final class AdminOperations {
    private AdminOperations() {}

    static Map<String, Object> run(Scenario s) throws Exception {
        String a = s.topic + "-a";
        String b = s.topic + "-b";
        Map<String, Object> result = new LinkedHashMap<>();
        try (Admin admin = s.admin()) {
            s.step("describeCluster");
            var cluster = admin.describeCluster();
            result.put("cluster_id", Scenario.await(cluster.clusterId()));
            List<Integer> nodes = new ArrayList<>();
            for (Node node : Scenario.await(cluster.nodes())) nodes.add(node.id());
            result.put("nodes", nodes);

            s.step("createTopics");
            NewTopic first = new NewTopic(a, 3, (short) 1)
                    .configs(Map.of("retention.ms", "3600000"));
            Scenario.await(admin.createTopics(List.of(first, new NewTopic(b, 1, (short) 1))).all());
            try {
                Scenario.await(admin.createTopics(List.of(new NewTopic(a, 3, (short) 1))).all());
                result.put("create_again", "created");
            } catch (ExecutionException expected) {
                result.put("create_again", expected.getCause().getClass().getSimpleName());
            }

            s.step("describeTopics");
            Map<String, TopicDescription> described =
                    Scenario.await(admin.describeTopics(List.of(a, b)).allTopicNames());
            Map<String, Object> topics = new TreeMap<>();
            for (TopicDescription description : described.values()) {
                Map<String, Object> one = new LinkedHashMap<>();
                one.put("partitions", description.partitions().size());
                one.put("topic_id", description.topicId().toString());
                one.put("leaders", description.partitions().stream()
                        .map(p -> p.leader() == null ? -1 : p.leader().id()).toList());
                topics.put(description.name(), one);
            }
            result.put("topics", topics);
            // DescribeTopicPartitions pages of 2 partitions: the client follows the cursor.
            Map<String, TopicDescription> paged = Scenario.await(admin.describeTopics(
                    List.of(a, b), new DescribeTopicsOptions().partitionSizeLimitPerResponse(2))
                    .allTopicNames());
            Map<String, Object> pages = new TreeMap<>();
            paged.forEach((name, description) -> pages.put(name, description.partitions().stream()
                    .map(p -> p.partition()).toList()));
            result.put("paged_partitions", pages);

            s.step("describeConfigs");
            ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, a);
            result.put("retention_before", entry(admin, resource, "retention.ms"));
            s.step("incrementalAlterConfigs");
            Scenario.await(admin.incrementalAlterConfigs(Map.of(resource, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"),
                            AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""),
                            AlterConfigOp.OpType.DELETE)))).all());
            result.put("cleanup_after", entry(admin, resource, "cleanup.policy"));
            result.put("retention_after", entry(admin, resource, "retention.ms"));
            ConfigResource broker = new ConfigResource(
                    ConfigResource.Type.BROKER, String.valueOf(nodes.get(0)));
            Config brokerConfig = Scenario.await(
                    admin.describeConfigs(List.of(broker)).all()).get(broker);
            result.put("broker_config_entries", brokerConfig.entries().size());

            s.step("createPartitions");
            Scenario.await(admin.createPartitions(Map.of(b, NewPartitions.increaseTo(2))).all());
            result.put("b_partitions", Scenario.await(
                    admin.describeTopics(List.of(b)).allTopicNames()).get(b).partitions().size());

            s.step("produce to " + b);
            TopicPartition b0 = new TopicPartition(b, 0);
            try (KafkaProducer<String, String> producer = s.producer(s.producerConfig())) {
                for (int index = 0; index < 10; index++) {
                    producer.send(new ProducerRecord<>(b, 0, (long) (1_000_000 + index),
                            "k" + index, "v" + index));
                }
                producer.flush();
            }
            s.step("listOffsets");
            Map<String, Object> offsets = new LinkedHashMap<>();
            offsets.put("earliest", offset(admin, b0, OffsetSpec.earliest()));
            offsets.put("latest", offset(admin, b0, OffsetSpec.latest()));
            offsets.put("max_timestamp", offset(admin, b0, OffsetSpec.maxTimestamp()));
            offsets.put("for_timestamp", offset(admin, b0, OffsetSpec.forTimestamp(1_000_003)));
            result.put("offsets", offsets);
            s.step("deleteRecords");
            var deleted = Scenario.await(admin.deleteRecords(
                    Map.of(b0, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(b0));
            result.put("low_watermark", deleted.lowWatermark());
            result.put("earliest_after_delete", offset(admin, b0, OffsetSpec.earliest()));

            s.step("a group reads " + b);
            try (KafkaConsumer<String, String> consumer = s.consumer(s.consumerConfig(s.group))) {
                consumer.subscribe(List.of(b));
                int[] read = {0};
                s.until("the group reads 6 records", () -> read[0] >= 6,
                        () -> read[0] += consumer.poll(Scenario.POLL).count());
                consumer.commitSync();
                s.step("describeConsumerGroups");
                result.put("group", Groups.describe(admin, s.group));
                s.step("listGroups");
                result.put("listed", listed(admin).contains(s.group));
            }
            s.step("listConsumerGroupOffsets");
            result.put("committed", committed(admin, s.group));
            s.step("alterConsumerGroupOffsets");
            Scenario.await(admin.alterConsumerGroupOffsets(
                    s.group, Map.of(b0, new OffsetAndMetadata(5))).all());
            result.put("committed_after_alter", committed(admin, s.group));
            s.step("deleteConsumerGroupOffsets");
            Scenario.await(admin.deleteConsumerGroupOffsets(s.group, Set.of(b0)).all());
            result.put("committed_after_delete", committed(admin, s.group));
            s.step("deleteConsumerGroups");
            Scenario.await(admin.deleteConsumerGroups(List.of(s.group)).all());
            result.put("listed_after_delete", listed(admin).contains(s.group));

            s.step("deleteTopics");
            Scenario.await(admin.deleteTopics(List.of(a, b)).all());
            s.until("the topics are gone", () -> {
                try {
                    Set<String> names = Scenario.await(admin.listTopics().names());
                    return !names.contains(a) && !names.contains(b);
                } catch (Exception failure) {
                    throw new IllegalStateException(failure);
                }
            }, () -> sleep(100));
            result.put("deleted", true);
        }
        return result;
    }

    private static String entry(Admin admin, ConfigResource resource, String name)
            throws Exception {
        Config config = Scenario.await(admin.describeConfigs(List.of(resource)).all()).get(resource);
        ConfigEntry entry = config.get(name);
        return entry == null ? null : entry.value() + " (" + entry.source() + ")";
    }

    private static long offset(Admin admin, TopicPartition partition, OffsetSpec spec)
            throws Exception {
        ListOffsetsResultInfo info =
                Scenario.await(admin.listOffsets(Map.of(partition, spec)).partitionResult(partition));
        return info.offset();
    }

    private static Set<String> listed(Admin admin) throws Exception {
        Set<String> groups = new TreeSet<>();
        for (GroupListing listing : Scenario.await(admin.listGroups().all())) {
            groups.add(listing.groupId());
        }
        return groups;
    }

    private static Map<String, Long> committed(Admin admin, String group) throws Exception {
        Map<String, Long> offsets = new TreeMap<>();
        Scenario.await(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata())
                .forEach((tp, meta) -> offsets.put(tp.toString(), meta == null ? null : meta.offset()));
        return offsets;
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(interrupted);
        }
    }
}
