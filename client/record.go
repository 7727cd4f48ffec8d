package client

import (
	"time"

	dislogv1 "github.com/dislog/dislog/client/api/v1"
)

// Record is one record of a topic.
type Record struct {
	// Offset is the record's position in its topic; set on records read, ignored on produce.
	Offset uint64
	// Key is optional; empty means none.
	Key   []byte
	Value []byte
	// Headers are optional metadata, in order; keys may repeat.
	Headers []Header
	// Time is when the server appended the record; set on records read, ignored on produce.
	Time time.Time
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

func (r *Record) proto() *dislogv1.Record {
	p := &dislogv1.Record{Key: r.Key, Value: r.Value}
	if len(r.Headers) > 0 {
		p.Headers = make([]*dislogv1.Header, len(r.Headers))
		for i, h := range r.Headers {
			p.Headers[i] = &dislogv1.Header{Key: h.Key, Value: h.Value}
		}
	}
	return p
}

// RecordFromProto converts a record of the generated API, as ConsumeStream returns them. The
// record's byte slices are shared, not copied.
func RecordFromProto(p *dislogv1.Record) Record {
	r := Record{Offset: p.GetOffset(), Key: p.GetKey(), Value: p.GetValue()}
	if hs := p.GetHeaders(); len(hs) > 0 {
		r.Headers = make([]Header, len(hs))
		for i, h := range hs {
			r.Headers[i] = Header{Key: h.GetKey(), Value: h.GetValue()}
		}
	}
	if t := p.GetAppendTime(); t != nil {
		r.Time = t.AsTime()
	}
	return r
}

// ToProto converts a record to the generated API's type, for ProduceStream. Offset and Time are
// left out: the server sets them.
func (r Record) ToProto() *dislogv1.Record { return r.proto() }

// TopicConfig is a topic's retention. Zero values keep everything.
type TopicConfig struct {
	// RetentionBytes deletes the oldest records, a whole segment at a time, while the topic is larger.
	RetentionBytes int64
	// RetentionAge deletes records older than this, a whole segment at a time.
	RetentionAge time.Duration
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Topic  string
	Config TopicConfig
	// LowestOffset is the oldest record's offset; it equals NextOffset when the topic is empty.
	LowestOffset uint64
	// NextOffset is the offset the next record produced gets.
	NextOffset uint64
	Bytes      int64
	Segments   int64
}

func topicInfoFromProto(p *dislogv1.TopicInfo) TopicInfo {
	info := TopicInfo{
		Topic:        p.GetTopic(),
		LowestOffset: p.GetLowestOffset(),
		NextOffset:   p.GetNextOffset(),
		Bytes:        p.GetBytes(),
		Segments:     p.GetSegments(),
	}
	if c := p.GetConfig(); c != nil {
		info.Config.RetentionBytes = c.GetRetentionBytes()
		if c.GetRetentionAge() != nil {
			info.Config.RetentionAge = c.GetRetentionAge().AsDuration()
		}
	}
	return info
}
