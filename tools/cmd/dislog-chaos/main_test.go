package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dislog/dislog/tools/chaos"
	"github.com/matryer/is"
)

func TestBadFlagsFailWithStatus2BeforeStartingAnything(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown fault", []string{"--faults", "kill,flood", "--dislog-bin", "/nonexistent"}, `unknown fault "flood"`},
		{"a cluster of four", []string{"--nodes", "4", "--dislog-bin", "/nonexistent"}, "4 nodes: want 3 or 5"},
		{"an argument", []string{"now"}, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			is.Equal(code, exitError)
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.want)
			}
			is.Equal(stdout.Len(), 0)
		})
	}
}

func TestJSONReportCarriesTheVerdicts(t *testing.T) {
	is := is.New(t)
	rep := &chaos.Report{
		Seed: 7, Nodes: 3, Duration: time.Minute, FaultKinds: []chaos.Fault{chaos.Kill},
		Ops:      map[chaos.OpKind]chaos.Counts{chaos.OpProduce: {Attempted: 3, OK: 1, Failed: 1, Indeterminate: 1}},
		Injected: map[chaos.Fault]int{chaos.Kill: 2},
		Checks: []chaos.Check{
			{Name: "no lost acknowledged writes", Verdict: chaos.Fail, Violations: 1, Details: []string{"lost one"}},
			{Name: "linearizable (porcupine)", Verdict: chaos.Unknown},
		},
	}
	var out bytes.Buffer
	is.NoErr(writeReport(&out, rep, true))
	var got struct {
		Seed     int64                   `json:"seed"`
		Valid    bool                    `json:"valid"`
		Complete bool                    `json:"complete"`
		Ops      map[string]chaos.Counts `json:"ops"`
		Injected map[string]int          `json:"faults_injected"`
		Checks   []chaos.Check           `json:"checks"`
	}
	is.NoErr(json.Unmarshal(out.Bytes(), &got))
	is.Equal(got.Seed, int64(7))
	is.True(!got.Valid)    // a failed check makes the run invalid
	is.True(!got.Complete) // an unknown verdict makes it incomplete
	is.Equal(got.Ops["produce"].Indeterminate, 1)
	is.Equal(got.Injected["kill"], 2)
	is.Equal(got.Checks[0].Details, []string{"lost one"})

	out.Reset()
	is.NoErr(writeReport(&out, rep, false))
	for _, want := range []string{"FAIL    no lost acknowledged writes", "          lost one", "UNKNOWN linearizable", "VIOLATIONS FOUND", "kill 2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
}
