package ctl

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
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
	j := jsonRecord{Topic: topic, Offset: r.Offset, Time: r.Time.UTC()}
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

// jsonTopic is a topic in --output json.
type jsonTopic struct {
	Topic          string `json:"topic"`
	LowestOffset   uint64 `json:"lowest_offset"`
	NextOffset     uint64 `json:"next_offset"`
	Bytes          int64  `json:"bytes"`
	Segments       int64  `json:"segments"`
	RetentionBytes int64  `json:"retention_bytes,omitempty"`
	RetentionAge   string `json:"retention_age,omitempty"`
}

func newJSONTopic(t client.TopicInfo) jsonTopic {
	j := jsonTopic{
		Topic: t.Topic, LowestOffset: t.LowestOffset, NextOffset: t.NextOffset, Bytes: t.Bytes, Segments: t.Segments,
		RetentionBytes: t.Config.RetentionBytes,
	}
	if t.Config.RetentionAge > 0 {
		j.RetentionAge = t.Config.RetentionAge.String()
	}
	return j
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
