package cluster

import (
	"testing"

	"github.com/matryer/is"
)

func TestParseSeeds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		endpoint string
		want     []string
		ok       bool
	}{
		{"one seed", "127.0.0.1:7070", []string{"127.0.0.1:7070"}, true},
		{"several, spaces and repeats dropped", "a:1, b:2,a:1,", []string{"a:1", "b:2"}, true},
		{"IPv6", "[::1]:7070", []string{"[::1]:7070"}, true},
		{"none", "", nil, false},
		{"only commas", ",,", nil, false},
		{"a seed without a port", "a:1,b", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			got, err := ParseSeeds(tc.endpoint)
			is.Equal(err == nil, tc.ok)
			is.Equal(got, tc.want)
		})
	}
}

func TestAnAddressOnAllInterfacesIsReachedOnTheHostThatAnswered(t *testing.T) {
	is := is.New(t)
	for advertised, want := range map[string]string{
		":7070":          "10.0.0.2:7070",
		"0.0.0.0:7070":   "10.0.0.2:7070",
		"[::]:7070":      "10.0.0.2:7070",
		"10.0.0.3:7070":  "10.0.0.3:7070",
		"node3:7070":     "node3:7070",
		"not an address": "not an address",
	} {
		is.Equal(reachable(advertised, "10.0.0.2:9000"), want)
	}
}
