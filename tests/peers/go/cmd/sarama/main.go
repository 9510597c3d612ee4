// Command sarama runs one scenario against a Kafka-protocol broker with IBM/sarama and prints its
// results as one JSON line (see internal/report):
//
//	sarama -bootstrap 127.0.0.1:9092 -scenario produce|group|admin -topic T [-group G] [-records N]
package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"headrace.local/peers/go/internal/report"
)

const client = "sarama"

func main() {
	o := report.Parse(client)
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	switch o.Scenario {
	case "produce":
		report.Emit(produce(ctx, o))
	case "group":
		report.Emit(group(ctx, o))
	case "admin":
		report.Emit(admin(ctx, o))
	default:
		report.Fail(client, o.Scenario, "usage", fmt.Errorf("unknown scenario %q", o.Scenario))
	}
}

func check(o report.Options, step string, err error) {
	if err != nil {
		report.Fail(client, o.Scenario, step, err)
	}
}

// config: sarama picks request versions from Config.Version, lowered to what the broker's
// ApiVersions answer offers; V4_0_0_0 is what a current application would configure.
func config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.ClientID = "headrace-compat-sarama"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return cfg
}

func newClient(o report.Options, cfg *sarama.Config) sarama.Client {
	cl, err := sarama.NewClient(o.Bootstrap, cfg)
	check(o, "new client", err)
	return cl
}

func createTopic(o report.Options, adm sarama.ClusterAdmin, partitions int32) error {
	return adm.CreateTopic(o.Topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
}

func sendAll(o report.Options, cl sarama.Client, messages []*sarama.ProducerMessage) {
	producer, err := sarama.NewSyncProducerFromClient(cl)
	check(o, "new producer", err)
	defer producer.Close()
	check(o, "produce", producer.SendMessages(messages))
}

// kafkaErr is a response's error code as an error, nil for ErrNoError.
func kafkaErr(code sarama.KError) error {
	if code == sarama.ErrNoError {
		return nil
	}
	return code
}

func text(e sarama.Encoder) string {
	if e == nil {
		return ""
	}
	b, _ := e.Encode()
	return string(b)
}

// produce: N keyed records (10 distinct keys) with acks=all and the idempotent producer, then
// every partition read back from its start.
func produce(ctx context.Context, o report.Options) report.Produce {
	started := time.Now()
	const partitions = 3
	cfg := config()
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1 // sarama's condition for the idempotent producer
	cl := newClient(o, cfg)
	defer cl.Close()
	adm, err := sarama.NewClusterAdminFromClient(cl)
	check(o, "new admin", err)
	check(o, "create topic", createTopic(o, adm, partitions))
	out := report.Produce{
		Client: client, Scenario: o.Scenario, Topic: o.Topic, Partitions: partitions,
		Acks: "all", Idempotent: cfg.Producer.Idempotent, ProducerIDs: []int64{},
	}
	messages := make([]*sarama.ProducerMessage, o.Records)
	for i := range messages {
		messages[i] = &sarama.ProducerMessage{
			Topic: o.Topic, Key: sarama.StringEncoder(fmt.Sprintf("key-%d", i%10)),
			Value: sarama.StringEncoder(fmt.Sprintf("value-%d", i)),
		}
	}
	sendAll(o, cl, messages)
	for _, m := range messages {
		out.Produced = append(out.Produced, report.Record{
			Key: text(m.Key), Value: text(m.Value), Partition: m.Partition, Offset: m.Offset,
		})
	}

	consumer, err := sarama.NewConsumerFromClient(cl)
	check(o, "new consumer", err)
	defer consumer.Close()
	messagesIn := make(chan *sarama.ConsumerMessage)
	for p := range int32(partitions) {
		pc, err := consumer.ConsumePartition(o.Topic, p, sarama.OffsetOldest)
		check(o, fmt.Sprintf("consume partition %d", p), err)
		defer pc.AsyncClose()
		go func() {
			for m := range pc.Messages() {
				select {
				case messagesIn <- m:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for len(out.Consumed) < o.Records {
		select {
		case m := <-messagesIn:
			out.Consumed = append(out.Consumed, report.Record{
				Key: string(m.Key), Value: string(m.Value), Partition: m.Partition, Offset: m.Offset,
			})
		case <-ctx.Done():
			check(o, "consume", fmt.Errorf("read %d of %d records: %w", len(out.Consumed), o.Records, ctx.Err()))
		}
	}
	out.ElapsedMS = time.Since(started).Milliseconds()
	return out
}

// member is one consumer of a group (a sarama.ConsumerGroupHandler); Setup and Cleanup keep its
// current assignment and session.
type member struct {
	group    sarama.ConsumerGroup
	topic    string
	mu       sync.Mutex
	session  sarama.ConsumerGroupSession
	assigned []int32
	consumed map[int32]map[int64]bool
	done     chan struct{}
}

func newMember(o report.Options, topic string) *member {
	g, err := sarama.NewConsumerGroup(o.Bootstrap, o.Group, config())
	check(o, "new consumer group", err)
	return &member{group: g, topic: topic, consumed: map[int32]map[int64]bool{}, done: make(chan struct{})}
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.session = s
	m.assigned = slices.Sorted(slices.Values(s.Claims()[m.topic]))
	return nil
}

// Cleanup commits what was read before the partitions go to the next generation.
func (m *member) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.session, m.assigned = nil, nil
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			m.mu.Lock()
			if m.consumed[msg.Partition] == nil {
				m.consumed[msg.Partition] = map[int64]bool{}
			}
			m.consumed[msg.Partition][msg.Offset] = true
			m.mu.Unlock()
			s.MarkMessage(msg, "")
		case <-s.Context().Done():
			return nil
		}
	}
}

// run joins and consumes, one session per generation, until ctx ends.
func (m *member) run(ctx context.Context) {
	defer close(m.done)
	for ctx.Err() == nil {
		if err := m.group.Consume(ctx, []string{m.topic}, m); errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return
		}
	}
}

func (m *member) snapshot() (assigned []int32, consumed map[int32]int, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	consumed = map[int32]int{}
	for p, offsets := range m.consumed {
		consumed[p] = len(offsets)
		total += len(offsets)
	}
	return slices.Clone(m.assigned), consumed, total
}

// commit flushes the member's marked offsets now.
func (m *member) commit() {
	m.mu.Lock()
	s := m.session
	m.mu.Unlock()
	if s != nil {
		s.Commit()
	}
}

// coversOnce: every partition 0..n-1 assigned to exactly one member, and each member holds some.
func coversOnce(n int, assignments ...[]int32) bool {
	seen := map[int32]int{}
	for _, a := range assignments {
		if len(a) == 0 {
			return false
		}
		for _, p := range a {
			seen[p]++
		}
	}
	for p := range int32(n) {
		if seen[p] != 1 {
			return false
		}
	}
	return len(seen) == n
}

func manualProducerClient(o report.Options) sarama.Client {
	cfg := config()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	return newClient(o, cfg)
}

// group: two members join one group on a 4-partition topic; once they share it, N records are
// produced (round robin over the partitions), read, and committed.
func group(ctx context.Context, o report.Options) report.Group {
	started := time.Now()
	const partitions = 4
	deadline, _ := ctx.Deadline()
	cl := manualProducerClient(o)
	defer cl.Close()
	adm, err := sarama.NewClusterAdminFromClient(cl)
	check(o, "new admin", err)
	check(o, "create topic", createTopic(o, adm, partitions))

	runCtx, stop := context.WithCancel(ctx)
	members := []*member{newMember(o, o.Topic), newMember(o, o.Topic)}
	for _, m := range members {
		go m.run(runCtx)
	}
	shared := func() bool {
		a, _, _ := members[0].snapshot()
		b, _, _ := members[1].snapshot()
		return coversOnce(partitions, a, b)
	}
	if !report.WaitFor(deadline, shared) {
		a, _, _ := members[0].snapshot()
		b, _, _ := members[1].snapshot()
		check(o, "share partitions", fmt.Errorf("assignments never covered %d partitions once: %v %v", partitions, a, b))
	}

	messages := make([]*sarama.ProducerMessage, o.Records)
	for i := range messages {
		messages[i] = &sarama.ProducerMessage{
			Topic: o.Topic, Partition: int32(i % partitions),
			Key: sarama.StringEncoder(fmt.Sprintf("key-%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("value-%d", i)),
		}
	}
	sendAll(o, cl, messages)
	consumedAll := func() bool {
		_, _, a := members[0].snapshot()
		_, _, b := members[1].snapshot()
		return a+b >= o.Records
	}
	if !report.WaitFor(deadline, consumedAll) {
		check(o, "consume", fmt.Errorf("the members did not read %d records in time", o.Records))
	}
	out := report.Group{
		Client: client, Scenario: o.Scenario, Topic: o.Topic, Group: o.Group, Partitions: partitions,
		Produced: o.Records, Committed: map[int32]int64{}, EndOffsets: map[int32]int64{},
	}
	for _, m := range members {
		m.commit()
		assigned, consumed, total := m.snapshot()
		out.Members = append(out.Members, report.Member{Assigned: assigned, Consumed: consumed})
		out.Consumed += total
	}
	all := []int32{0, 1, 2, 3}
	committed, err := adm.ListConsumerGroupOffsets(o.Group, map[string][]int32{o.Topic: all})
	check(o, "fetch offsets", err)
	for _, p := range all {
		block := committed.GetBlock(o.Topic, p)
		if block == nil {
			continue
		}
		check(o, fmt.Sprintf("fetch offset %d", p), kafkaErr(block.Err))
		out.Committed[p] = block.Offset
		end, err := cl.GetOffset(o.Topic, p, sarama.OffsetNewest)
		check(o, "list end offsets", err)
		out.EndOffsets[p] = end
	}
	stop()
	for _, m := range members {
		_ = m.group.Close() // leaves the group
		<-m.done
	}
	out.ElapsedMS = time.Since(started).Milliseconds()
	return out
}

// admin: topic creation (twice), metadata, offsets, groups (one live member), deletion.
func admin(ctx context.Context, o report.Options) report.Admin {
	started := time.Now()
	const partitions = 3
	deadline, _ := ctx.Deadline()
	cl := manualProducerClient(o)
	defer cl.Close()
	adm, err := sarama.NewClusterAdminFromClient(cl)
	check(o, "new admin", err)
	out := report.Admin{
		Client: client, Scenario: o.Scenario, Topic: o.Topic, Group: o.Group,
		Leaders: map[int32]int32{}, Replicas: map[int32][]int32{}, Offsets: map[int32]report.Offsets{},
		ListedGroups: []string{},
	}
	out.CreatedErr = report.ErrText(createTopic(o, adm, partitions))
	out.CreateAgainErr = report.ErrText(createTopic(o, adm, partitions))

	described, err := adm.DescribeTopics([]string{o.Topic})
	check(o, "describe topic", err)
	for _, t := range described {
		check(o, "describe topic", kafkaErr(t.Err))
		for _, p := range t.Partitions {
			out.Leaders[p.ID] = p.Leader
			out.Replicas[p.ID] = p.Replicas
		}
		out.Partitions = len(t.Partitions)
	}

	messages := make([]*sarama.ProducerMessage, o.Records)
	for i := range messages {
		messages[i] = &sarama.ProducerMessage{Topic: o.Topic, Partition: 0, Value: sarama.StringEncoder(fmt.Sprintf("value-%d", i))}
	}
	sendAll(o, cl, messages)
	out.Produced = o.Records
	for p := range int32(partitions) {
		earliest, err := cl.GetOffset(o.Topic, p, sarama.OffsetOldest)
		check(o, "list start offsets", err)
		latest, err := cl.GetOffset(o.Topic, p, sarama.OffsetNewest)
		check(o, "list end offsets", err)
		out.Offsets[p] = report.Offsets{Earliest: earliest, Latest: latest}
	}

	// One live member, so the group is listed and described with its assignment.
	m := newMember(o, o.Topic)
	runCtx, stop := context.WithCancel(ctx)
	go m.run(runCtx)
	holdsAll := func() bool { a, _, _ := m.snapshot(); return coversOnce(partitions, a) }
	if !report.WaitFor(deadline, holdsAll) {
		check(o, "join group", fmt.Errorf("the member was not assigned all %d partitions", partitions))
	}
	listed, err := adm.ListConsumerGroups()
	check(o, "list groups", err)
	for g := range listed {
		out.ListedGroups = append(out.ListedGroups, g)
	}
	slices.Sort(out.ListedGroups)
	groups, err := adm.DescribeConsumerGroups([]string{o.Group})
	check(o, "describe group", err)
	for _, g := range groups {
		check(o, "describe group", kafkaErr(g.Err))
		out.Described = report.DescribedGroup{
			State: g.State, ProtocolType: g.ProtocolType, Protocol: g.Protocol, Members: len(g.Members),
			Assigned: []int32{},
		}
		for _, member := range g.Members {
			assignment, err := member.GetMemberAssignment()
			check(o, "decode member assignment", err)
			if assignment != nil {
				out.Described.Assigned = append(out.Described.Assigned, assignment.Topics[o.Topic]...)
			}
		}
		slices.Sort(out.Described.Assigned)
	}
	stop()
	_ = m.group.Close()
	<-m.done

	out.DeletedErr = report.ErrText(adm.DeleteTopic(o.Topic))
	gone := func() bool {
		topics, err := adm.DescribeTopics([]string{o.Topic})
		if err != nil || len(topics) != 1 {
			return false
		}
		out.DescribeGoneErr = report.ErrText(kafkaErr(topics[0].Err))
		return errors.Is(topics[0].Err, sarama.ErrUnknownTopicOrPartition)
	}
	out.GoneAfterDelete = report.WaitFor(deadline, gone)
	out.ElapsedMS = time.Since(started).Milliseconds()
	return out
}
