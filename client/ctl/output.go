package ctl

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/dislog/dislog/client"
)

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// jsonRecord is a record in --output json. Bytes that are valid UTF-8 are strings (value); others
// are base64 (value_base64), so any record round-trips.
type jsonRecord struct {
	Topic       string       `json:"topic"`
	Partition   int          `json:"partition"`
	Offset      uint64       `json:"offset"`
	Time        time.Time    `json:"time"`
	Key         *string      `json:"key,omitempty"`
	KeyBase64   *string      `json:"key_base64,omitempty"`
	Headers     []jsonHeader `json:"headers,omitempty"`
	Value       *string      `json:"value,omitempty"`
	ValueBase64 *string      `json:"value_base64,omitempty"`
}

type jsonHeader struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// textOrBase64 returns b as a string when it is UTF-8, else as base64.
func textOrBase64(b []byte) (text, b64 *string) {
	if utf8.Valid(b) {
		s := string(b)
		return &s, nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return nil, &s
}

func newJSONRecord(topic string, r client.Record) jsonRecord {
	j := jsonRecord{Topic: topic, Partition: r.Partition, Offset: r.Offset, Time: r.Time.UTC()}
	if len(r.Key) > 0 {
		j.Key, j.KeyBase64 = textOrBase64(r.Key)
	}
	j.Value, j.ValueBase64 = textOrBase64(r.Value)
	for _, h := range r.Headers {
		jh := jsonHeader{Key: h.Key}
		jh.Value, jh.ValueBase64 = textOrBase64(h.Value)
		j.Headers = append(j.Headers, jh)
	}
	return j
}

// jsonTopic is a topic in --output json. lowest_offset and next_offset are partition 0's.
type jsonTopic struct {
	Topic             string          `json:"topic"`
	LowestOffset      uint64          `json:"lowest_offset"`
	NextOffset        uint64          `json:"next_offset"`
	Bytes             int64           `json:"bytes"`
	Segments          int64           `json:"segments"`
	RetentionBytes    int64           `json:"retention_bytes,omitempty"`
	RetentionAge      string          `json:"retention_age,omitempty"`
	Partitions        int             `json:"partitions"`
	ReplicationFactor int             `json:"replication_factor,omitempty"`
	PartitionInfo     []jsonPartition `json:"partition_info,omitempty"`
}

// jsonPartition is one partition of a topic in --output json.
type jsonPartition struct {
	Partition    int      `json:"partition"`
	Leader       string   `json:"leader"`
	LeaderAddr   string   `json:"leader_addr,omitempty"`
	Replicas     []string `json:"replicas"`
	InSync       []string `json:"in_sync"`
	LowestOffset uint64   `json:"lowest_offset"`
	NextOffset   uint64   `json:"next_offset"`
	Bytes        int64    `json:"bytes"`
}

func newJSONTopic(t client.TopicInfo) jsonTopic {
	j := jsonTopic{
		Topic: t.Topic, LowestOffset: t.LowestOffset, NextOffset: t.NextOffset, Bytes: t.Bytes, Segments: t.Segments,
		RetentionBytes: t.Config.RetentionBytes, Partitions: t.Partitions, ReplicationFactor: t.ReplicationFactor,
	}
	if t.Config.RetentionAge > 0 {
		j.RetentionAge = t.Config.RetentionAge.String()
	}
	for _, p := range t.PartitionInfo {
		j.PartitionInfo = append(j.PartitionInfo, jsonPartition(p))
	}
	return j
}

// records counts a topic's records: over its partitions, or partition 0's for a server from
// before partitions.
func records(t client.TopicInfo) uint64 {
	if len(t.PartitionInfo) == 0 {
		return t.NextOffset - t.LowestOffset
	}
	var n uint64
	for _, p := range t.PartitionInfo {
		n += p.NextOffset - p.LowestOffset
	}
	return n
}

// replicas is a topic's replication factor for text output, "-" when the server did not say.
func replicas(t client.TopicInfo) string {
	if t.ReplicationFactor == 0 {
		return "-"
	}
	return strconv.Itoa(t.ReplicationFactor)
}

// layout describes a topic's partitions and replicas for text output.
func layout(t client.TopicInfo) string {
	s := fmt.Sprintf("%d partition", t.Partitions)
	if t.Partitions != 1 {
		s += "s"
	}
	if t.ReplicationFactor > 0 {
		s += fmt.Sprintf(", %d replica", t.ReplicationFactor)
		if t.ReplicationFactor != 1 {
			s += "s"
		}
		s += " each"
	}
	return s
}

// retention describes a topic's retention for text output.
func retention(c client.TopicConfig) string {
	var s string
	if c.RetentionBytes > 0 {
		s = fmt.Sprintf("%d bytes", c.RetentionBytes)
	}
	if c.RetentionAge > 0 {
		if s != "" {
			s += ", "
		}
		s += c.RetentionAge.String()
	}
	if s == "" {
		return "keep all"
	}
	return s
}
