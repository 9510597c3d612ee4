package dev.headrace.peers;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * Two members of one group share TOPIC: the first holds every partition, the second joins, the
 * partitions are split between them incrementally (the first gives up only what moves), then
 * RECORDS records are read between them and committed.
 */
final class Groups {
    private Groups() {}

    /** One member: its consumer, what it was given and gave up, what it read. */
    static final class Member implements ConsumerRebalanceListener {
        final String name;
        final KafkaConsumer<String, String> consumer;
        final List<Integer> revoked = new ArrayList<>();
        final List<Integer> lost = new ArrayList<>();
        final List<String> values = new ArrayList<>();

        Member(String name, KafkaConsumer<String, String> consumer, String topic) {
            this.name = name;
            this.consumer = consumer;
            consumer.subscribe(List.of(topic), this);
        }

        void poll() {
            for (ConsumerRecord<String, String> record : consumer.poll(Scenario.POLL)) {
                values.add(record.value());
            }
        }

        Set<Integer> owned() {
            Set<Integer> owned = new TreeSet<>();
            for (TopicPartition partition : consumer.assignment()) owned.add(partition.partition());
            return owned;
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            for (TopicPartition partition : partitions) revoked.add(partition.partition());
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            for (TopicPartition partition : partitions) lost.add(partition.partition());
        }

        Map<String, Object> report() {
            Map<String, Object> report = new LinkedHashMap<>();
            report.put("owned", owned());
            report.put("revoked", new ArrayList<>(revoked));
            report.put("lost", new ArrayList<>(lost));
            report.put("read", values.size());
            return report;
        }
    }

    static Map<String, Object> cooperativeSticky(Scenario s) throws Exception {
        Properties config = s.consumerConfig(s.group);
        config.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        config.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
                CooperativeStickyAssignor.class.getName());
        return twoMembers(s, config, config);
    }

    static Map<String, Object> consumerProtocol(Scenario s) throws Exception {
        Properties config = s.consumerConfig(s.group);
        config.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        config.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, "uniform");
        return twoMembers(s, config, config);
    }

    /**
     * KIP-848's online migration: a classic member holds the group, a consumer-protocol member
     * joins (the group becomes a consumer group), then leaves (it is classic again) while the
     * classic member reads on.
     */
    static Map<String, Object> migration(Scenario s) throws Exception {
        Properties classic = s.consumerConfig(s.group);
        classic.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        classic.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
                CooperativeStickyAssignor.class.getName());
        Properties modern = s.consumerConfig(s.group);
        modern.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        Map<String, Object> result = new LinkedHashMap<>();
        try (Admin admin = s.admin()) {
            Member first = new Member("classic", s.consumer(classic), s.topic);
            try {
                int partitions = first.consumer.partitionsFor(s.topic).size();
                s.step("the classic member holds every partition");
                s.until("classic member owns all", () -> first.owned().size() == partitions,
                        first::poll);
                result.put("before", describe(admin, s.group));
                s.step("a consumer-protocol member joins");
                Member second = new Member("consumer", s.consumer(modern), s.topic);
                try {
                    s.until("both members own partitions", () -> split(first, second, partitions),
                            () -> { first.poll(); second.poll(); });
                    result.put("joined", describe(admin, s.group));
                    result.put("classic_member", first.report());
                    result.put("consumer_member", second.report());
                    s.step("read between them");
                    produce(s);
                    s.until("both read " + s.records, () ->
                            first.values.size() + second.values.size() >= s.records,
                            () -> { first.poll(); second.poll(); });
                    first.consumer.commitSync();
                    second.consumer.commitSync();
                } finally {
                    second.consumer.close();
                }
                s.step("the consumer-protocol member left");
                s.until("the classic member owns all again",
                        () -> first.owned().size() == partitions, first::poll);
                result.put("left", describe(admin, s.group));
                result.put("read", first.values.size() + second.values.size());
            } finally {
                first.consumer.close();
            }
        }
        return result;
    }

    private static boolean split(Member first, Member second, int partitions) {
        Set<Integer> a = first.owned();
        Set<Integer> b = second.owned();
        Set<Integer> both = new HashSet<>(a);
        both.retainAll(b);
        return !a.isEmpty() && !b.isEmpty() && both.isEmpty() && a.size() + b.size() == partitions;
    }

    private static void produce(Scenario s) {
        try (KafkaProducer<String, String> producer = s.producer(s.producerConfig())) {
            for (int index = 0; index < s.records; index++) {
                producer.send(new ProducerRecord<>(s.topic, "key-" + index, "value-" + index));
            }
            producer.flush();
        }
    }

    private static Map<String, Object> twoMembers(Scenario s, Properties a, Properties b)
            throws Exception {
        Map<String, Object> result = new LinkedHashMap<>();
        Member first = new Member("first", s.consumer(a), s.topic);
        Member second = null;
        try (Admin admin = s.admin()) {
            int partitions = first.consumer.partitionsFor(s.topic).size();
            s.step("the first member holds every partition");
            s.until("first owns all", () -> first.owned().size() == partitions, first::poll);
            s.step("a second member joins");
            Member joined = new Member("second", s.consumer(b), s.topic);
            second = joined;
            s.until("the partitions are split", () -> split(first, joined, partitions),
                    () -> { first.poll(); joined.poll(); });
            result.put("first", first.report());
            result.put("second", joined.report());
            s.step("read between them");
            produce(s);
            s.until("both read " + s.records, () ->
                    first.values.size() + joined.values.size() >= s.records,
                    () -> { first.poll(); joined.poll(); });
            first.consumer.commitSync();
            joined.consumer.commitSync();
            result.put("read", first.values.size() + joined.values.size());
            result.put("read_by_first", first.values.size());
            result.put("read_by_second", joined.values.size());
            s.step("describe the group");
            result.put("group", describe(admin, s.group));
        } finally {
            first.consumer.close();
            if (second != null) second.consumer.close();
        }
        return result;
    }

    static Map<String, Object> describe(Admin admin, String group) throws Exception {
        ConsumerGroupDescription description = Scenario.await(
                admin.describeConsumerGroups(List.of(group)).describedGroups().get(group));
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("type", description.type().toString());
        report.put("state", description.groupState().toString());
        report.put("assignor", description.partitionAssignor());
        List<Map<String, Object>> members = new ArrayList<>();
        for (MemberDescription member : description.members()) {
            Map<String, Object> one = new LinkedHashMap<>();
            one.put("client_id", member.clientId());
            one.put("host", member.host());
            Set<Integer> assigned = new TreeSet<>();
            for (TopicPartition partition : member.assignment().topicPartitions()) {
                assigned.add(partition.partition());
            }
            one.put("assignment", assigned);
            one.put("classic", member.upgraded().map(upgraded -> !upgraded).orElse(null));
            members.add(one);
        }
        report.put("members", members);
        return report;
    }
}
