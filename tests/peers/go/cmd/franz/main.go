// Command franz runs one scenario against a Kafka-protocol broker with franz-go (kgo, kadm) and
// prints its results as one JSON line (see internal/report):
//
//	franz -bootstrap 127.0.0.1:9092 -scenario produce|group|admin -topic T [-group G] [-records N]
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"headrace.local/peers/go/internal/report"
)

const client = "franz-go"

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

func newClient(o report.Options, opts ...kgo.Opt) *kgo.Client {
	base := []kgo.Opt{kgo.SeedBrokers(o.Bootstrap...), kgo.ClientID("headrace-compat-franz")}
	cl, err := kgo.NewClient(append(base, opts...)...)
	check(o, "new client", err)
	return cl
}

func createTopic(ctx context.Context, o report.Options, adm *kadm.Client, partitions int32) {
	created, err := adm.CreateTopic(ctx, partitions, 1, nil, o.Topic)
	check(o, "create topic", cmp.Or(err, created.Err))
}

func toRecord(r *kgo.Record) report.Record {
	return report.Record{Key: string(r.Key), Value: string(r.Value), Partition: r.Partition, Offset: r.Offset}
}

// produce: N keyed records (10 distinct keys) with acks=all and the idempotent producer
// (franz-go's default), then every partition read back from its start.
func produce(ctx context.Context, o report.Options) report.Produce {
	started := time.Now()
	const partitions = 3
	cl := newClient(o, kgo.RequiredAcks(kgo.AllISRAcks()))
	defer cl.Close()
	createTopic(ctx, o, kadm.NewClient(cl), partitions)
	out := report.Produce{
		Client: client, Scenario: o.Scenario, Topic: o.Topic, Partitions: partitions,
		Acks: "all", Idempotent: true, ProducerIDs: []int64{},
	}
	records := make([]*kgo.Record, o.Records)
	for i := range records {
		records[i] = &kgo.Record{
			Topic: o.Topic, Key: fmt.Appendf(nil, "key-%d", i%10), Value: fmt.Appendf(nil, "value-%d", i),
		}
	}
	check(o, "produce", cl.ProduceSync(ctx, records...).FirstErr())
	for _, r := range records {
		out.Produced = append(out.Produced, toRecord(r))
		out.Idempotent = out.Idempotent && r.ProducerID >= 0
	}

	consumer := newClient(o, kgo.ConsumeTopics(o.Topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer consumer.Close()
	for len(out.Consumed) < o.Records {
		fetches := consumer.PollFetches(ctx)
		check(o, "consume", ctx.Err())
		fetches.EachError(func(topic string, partition int32, err error) {
			check(o, fmt.Sprintf("fetch %s/%d", topic, partition), err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			out.Consumed = append(out.Consumed, toRecord(r))
			if !slices.Contains(out.ProducerIDs, r.ProducerID) {
				out.ProducerIDs = append(out.ProducerIDs, r.ProducerID)
			}
		})
	}
	out.ElapsedMS = time.Since(started).Milliseconds()
	return out
}

// member is one consumer of a group; the callbacks keep its current assignment.
type member struct {
	cl       *kgo.Client
	topic    string
	mu       sync.Mutex
	assigned map[int32]bool
	consumed map[int32]map[int64]bool
	done     chan struct{}
}

func newMember(o report.Options, topic string) *member {
	m := &member{topic: topic, assigned: map[int32]bool{}, consumed: map[int32]map[int64]bool{}, done: make(chan struct{})}
	m.cl = newClient(o,
		kgo.ConsumerGroup(o.Group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, got map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range got[topic] {
				m.assigned[p] = true
			}
		}),
		// Commit what was read before giving partitions away, so the next owner starts there.
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
			_ = cl.CommitUncommittedOffsets(ctx)
			m.drop(lost)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) { m.drop(lost) }),
	)
	return m
}

func (m *member) drop(lost map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range lost[m.topic] {
		delete(m.assigned, p)
	}
}

// poll consumes until ctx ends.
func (m *member) poll(ctx context.Context) {
	defer close(m.done)
	for ctx.Err() == nil {
		fetches := m.cl.PollFetches(ctx)
		if fetches.IsClientClosed() {
			return
		}
		m.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			if m.consumed[r.Partition] == nil {
				m.consumed[r.Partition] = map[int64]bool{}
			}
			m.consumed[r.Partition][r.Offset] = true
		})
		m.mu.Unlock()
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
	for p := range m.assigned {
		assigned = append(assigned, p)
	}
	slices.Sort(assigned)
	return assigned, consumed, total
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

// group: two members join one group on a 4-partition topic; once they share it, N records are
// produced (round robin over the partitions), read, and committed.
func group(ctx context.Context, o report.Options) report.Group {
	started := time.Now()
	const partitions = 4
	deadline, _ := ctx.Deadline()
	cl := newClient(o, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	createTopic(ctx, o, adm, partitions)

	pollCtx, stopPolling := context.WithCancel(ctx)
	members := []*member{newMember(o, o.Topic), newMember(o, o.Topic)}
	for _, m := range members {
		go m.poll(pollCtx)
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

	records := make([]*kgo.Record, o.Records)
	for i := range records {
		records[i] = &kgo.Record{
			Topic: o.Topic, Partition: int32(i % partitions),
			Key: fmt.Appendf(nil, "key-%d", i), Value: fmt.Appendf(nil, "value-%d", i),
		}
	}
	check(o, "produce", cl.ProduceSync(ctx, records...).FirstErr())
	consumedAll := func() bool {
		_, _, a := members[0].snapshot()
		_, _, b := members[1].snapshot()
		return a+b >= o.Records
	}
	if !report.WaitFor(deadline, consumedAll) {
		check(o, "consume", fmt.Errorf("the members did not read %d records in time", o.Records))
	}
	stopPolling()
	out := report.Group{
		Client: client, Scenario: o.Scenario, Topic: o.Topic, Group: o.Group, Partitions: partitions,
		Produced: o.Records, Committed: map[int32]int64{}, EndOffsets: map[int32]int64{},
	}
	for _, m := range members {
		<-m.done
		check(o, "commit", m.cl.CommitUncommittedOffsets(ctx))
		assigned, consumed, total := m.snapshot()
		out.Members = append(out.Members, report.Member{Assigned: assigned, Consumed: consumed})
		out.Consumed += total
	}
	committed, err := adm.FetchOffsets(ctx, o.Group)
	check(o, "fetch offsets", cmp.Or(err, committed.Error()))
	for p, c := range committed[o.Topic] {
		out.Committed[p] = c.At
	}
	ends, err := adm.ListEndOffsets(ctx, o.Topic)
	check(o, "list end offsets", cmp.Or(err, ends.Error()))
	ends.Each(func(l kadm.ListedOffset) { out.EndOffsets[l.Partition] = l.Offset })
	for _, m := range members {
		m.cl.Close() // leaves the group
	}
	out.ElapsedMS = time.Since(started).Milliseconds()
	return out
}

// admin: topic creation (twice), metadata, offsets, groups (one live member), deletion.
func admin(ctx context.Context, o report.Options) report.Admin {
	started := time.Now()
	const partitions = 3
	deadline, _ := ctx.Deadline()
	// kadm answers topic listings from kgo's metadata cache, refreshed at most every 5 s by default;
	// a short minimum age lets the listing after DeleteTopics see the broker's current answer.
	cl := newClient(o, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(100*time.Millisecond))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	out := report.Admin{
		Client: client, Scenario: o.Scenario, Topic: o.Topic, Group: o.Group,
		Leaders: map[int32]int32{}, Replicas: map[int32][]int32{}, Offsets: map[int32]report.Offsets{},
		ListedGroups: []string{},
	}
	created, err := adm.CreateTopic(ctx, partitions, 1, nil, o.Topic)
	out.CreatedErr = report.ErrText(cmp.Or(err, created.Err))
	again, err := adm.CreateTopic(ctx, partitions, 1, nil, o.Topic)
	out.CreateAgainErr = report.ErrText(cmp.Or(err, again.Err))

	topics, err := adm.ListTopics(ctx, o.Topic)
	check(o, "describe topic", cmp.Or(err, topics.Error()))
	for p, d := range topics[o.Topic].Partitions {
		out.Leaders[p] = d.Leader
		out.Replicas[p] = d.Replicas
	}
	out.Partitions = len(topics[o.Topic].Partitions)

	records := make([]*kgo.Record, o.Records)
	for i := range records {
		records[i] = &kgo.Record{Topic: o.Topic, Partition: 0, Value: fmt.Appendf(nil, "value-%d", i)}
	}
	check(o, "produce", cl.ProduceSync(ctx, records...).FirstErr())
	out.Produced = o.Records
	starts, err := adm.ListStartOffsets(ctx, o.Topic)
	check(o, "list start offsets", cmp.Or(err, starts.Error()))
	ends, err := adm.ListEndOffsets(ctx, o.Topic)
	check(o, "list end offsets", cmp.Or(err, ends.Error()))
	starts.Each(func(l kadm.ListedOffset) {
		end, _ := ends.Lookup(l.Topic, l.Partition)
		out.Offsets[l.Partition] = report.Offsets{Earliest: l.Offset, Latest: end.Offset}
	})

	// One live member, so the group is listed and described with its assignment.
	m := newMember(o, o.Topic)
	pollCtx, stopPolling := context.WithCancel(ctx)
	go m.poll(pollCtx)
	holdsAll := func() bool { a, _, _ := m.snapshot(); return coversOnce(partitions, a) }
	if !report.WaitFor(deadline, holdsAll) {
		check(o, "join group", fmt.Errorf("the member was not assigned all %d partitions", partitions))
	}
	listed, err := adm.ListGroups(ctx)
	check(o, "list groups", err)
	out.ListedGroups = append(out.ListedGroups, listed.Groups()...)
	described, err := adm.DescribeGroups(ctx, o.Group)
	check(o, "describe group", cmp.Or(err, described.Error()))
	g := described[o.Group]
	out.Described = report.DescribedGroup{
		State: g.State, ProtocolType: g.ProtocolType, Protocol: g.Protocol, Members: len(g.Members),
		Assigned: []int32{},
	}
	for _, member := range g.Members {
		if c, ok := member.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				out.Described.Assigned = append(out.Described.Assigned, t.Partitions...)
			}
		}
	}
	slices.Sort(out.Described.Assigned)
	stopPolling()
	<-m.done
	m.cl.Close()

	deleted, err := adm.DeleteTopic(ctx, o.Topic)
	out.DeletedErr = report.ErrText(cmp.Or(err, deleted.Err))
	gone := func() bool {
		topics, err := adm.ListTopics(ctx, o.Topic)
		if err != nil {
			return false
		}
		out.DescribeGoneErr = report.ErrText(topics.Error())
		return errors.Is(topics.Error(), kerr.UnknownTopicOrPartition)
	}
	out.GoneAfterDelete = report.WaitFor(deadline, gone)
	out.ElapsedMS = time.Since(started).Milliseconds()
	return out
}
