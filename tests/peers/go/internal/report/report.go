// Package report holds what the client programs (cmd/franz, cmd/sarama) share: the command line
// and the one JSON line each scenario prints, so tests/compat reads both clients' results alike.
package report

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Options are the command line of both programs.
type Options struct {
	Bootstrap []string
	Scenario  string // produce | group | admin
	Topic     string
	Group     string
	Records   int
	Timeout   time.Duration
}

// Parse reads the flags; every scenario needs -bootstrap, -scenario and -topic.
func Parse(client string) Options {
	bootstrap := flag.String("bootstrap", "127.0.0.1:9092", "comma-separated host:port list")
	scenario := flag.String("scenario", "", "produce | group | admin")
	topic := flag.String("topic", "", "topic the scenario creates and uses")
	group := flag.String("group", "", "consumer group (group and admin scenarios)")
	records := flag.Int("records", 100, "records to produce")
	timeout := flag.Duration("timeout", 60*time.Second, "deadline of the whole scenario")
	flag.Parse()
	if *scenario == "" || *topic == "" {
		Fail(client, *scenario, "usage", fmt.Errorf("-scenario and -topic are required"))
	}
	return Options{
		Bootstrap: strings.Split(*bootstrap, ","),
		Scenario:  *scenario,
		Topic:     *topic,
		Group:     *group,
		Records:   *records,
		Timeout:   *timeout,
	}
}

// Record is one produced or consumed record.
type Record struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Produce: records written (in send order, with the partition and offset the broker acknowledged)
// and read back from the start of every partition.
type Produce struct {
	Client     string   `json:"client"`
	Scenario   string   `json:"scenario"`
	Topic      string   `json:"topic"`
	Partitions int      `json:"partitions"`
	Acks       string   `json:"acks"`
	Idempotent bool     `json:"idempotent"`
	Produced   []Record `json:"produced"`
	Consumed   []Record `json:"consumed"`
	// Distinct producer ids of the batches read back (franz-go; sarama does not expose them).
	ProducerIDs []int64 `json:"producer_ids"`
	ElapsedMS   int64   `json:"elapsed_ms"`
}

// Member is one consumer of the group scenario.
type Member struct {
	Assigned []int32       `json:"assigned"` // final assignment, sorted
	Consumed map[int32]int `json:"consumed"` // partition -> distinct records read
}

// Group: two members share a topic; records are produced once both hold partitions.
type Group struct {
	Client     string          `json:"client"`
	Scenario   string          `json:"scenario"`
	Topic      string          `json:"topic"`
	Group      string          `json:"group"`
	Partitions int             `json:"partitions"`
	Produced   int             `json:"produced"`
	Members    []Member        `json:"members"`
	Consumed   int             `json:"consumed"`  // distinct (partition, offset) read by all members
	Committed  map[int32]int64 `json:"committed"` // the group's offsets, fetched after the commit
	EndOffsets map[int32]int64 `json:"end_offsets"`
	ElapsedMS  int64           `json:"elapsed_ms"`
}

// Offsets of one partition.
type Offsets struct {
	Earliest int64 `json:"earliest"`
	Latest   int64 `json:"latest"`
}

// DescribedGroup is the admin scenario's view of a group with one live member.
type DescribedGroup struct {
	State        string  `json:"state"`
	ProtocolType string  `json:"protocol_type"`
	Protocol     string  `json:"protocol"`
	Members      int     `json:"members"`
	Assigned     []int32 `json:"assigned"`
}

// Admin: create, describe, list offsets, list and describe groups, delete.
type Admin struct {
	Client          string            `json:"client"`
	Scenario        string            `json:"scenario"`
	Topic           string            `json:"topic"`
	Group           string            `json:"group"`
	CreatedErr      string            `json:"created_error"`
	Partitions      int               `json:"partitions"`
	Leaders         map[int32]int32   `json:"leaders"`
	Replicas        map[int32][]int32 `json:"replicas"`
	Produced        int               `json:"produced"` // records written to partition 0 before the offsets
	Offsets         map[int32]Offsets `json:"offsets"`
	ListedGroups    []string          `json:"listed_groups"`
	Described       DescribedGroup    `json:"described_group"`
	CreateAgainErr  string            `json:"create_again_error"` // creating the topic a second time
	DeletedErr      string            `json:"deleted_error"`
	GoneAfterDelete bool              `json:"gone_after_delete"`
	DescribeGoneErr string            `json:"describe_gone_error"` // describing the deleted topic
	ElapsedMS       int64             `json:"elapsed_ms"`
}

// Emit prints v as one JSON line on stdout.
func Emit(v any) {
	line, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(line))
}

// Fail prints {"client", "scenario", "step", "error"} and exits 1.
func Fail(client, scenario, step string, err error) {
	Emit(map[string]string{"client": client, "scenario": scenario, "step": step, "error": err.Error()})
	os.Exit(1)
}

// ErrText is err's text, "" for nil.
func ErrText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// WaitFor polls cond every 20 ms until it holds or the deadline passes.
func WaitFor(deadline time.Time, cond func() bool) bool {
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
