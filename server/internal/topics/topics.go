// Package topics holds what every layer says about topics: the naming rules, a topic's retention
// configuration, and the errors of topic operations. The metadata of topics lives in the controller
// (package fsm) and their records in their partitions (package partition).
package topics

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound is returned for a topic that does not exist.
	ErrNotFound = errors.New("topics: topic not found")
	// ErrExists is returned by Create for a topic that exists.
	ErrExists = errors.New("topics: topic exists")
	// ErrInvalidName is returned for a name that breaks the naming rules (see ValidateName).
	ErrInvalidName = errors.New("topics: invalid name")
	// ErrInvalidConfig is returned for a topic configuration out of bounds.
	ErrInvalidConfig = errors.New("topics: invalid config")
)

// MaxNameLength is the longest topic (and consumer group) name.
const MaxNameLength = 249

// ValidateName checks a topic or consumer group name: 1 to 249 characters of ASCII letters, digits,
// '.', '_' and '-', and not "." or "..". Names are directory names, so the rules keep them safe as
// paths on every file system; they are Kafka's.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: %d characters, at most %d", ErrInvalidName, len(name), MaxNameLength)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	// By rune, so that the error quotes the character given ('é'), not its first byte ('Ã'), at
	// its position in characters.
	for i, c := range []rune(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q at character %d; use ASCII letters, digits, '.', '_' and '-'", ErrInvalidName, name, c, i+1)
		}
	}
	return nil
}

// Config is a topic's retention. Zero keeps everything.
type Config struct {
	RetentionBytes int64
	RetentionAge   time.Duration
}
