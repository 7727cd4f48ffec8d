package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/dislog/dislog/client/internal/fakelog"
	"github.com/matryer/is"
)

// ctl runs dislogctl in-process with stdin and the environment variables vars, and returns its
// exit code, stdout and stderr.
func ctl(t *testing.T, stdin string, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, env{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		lookupEnv: func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		},
	})
	return code, stdout.String(), stderr.String()
}

// devNode starts a fake server and writes its client files where a dev node would, under a data
// directory; it returns the environment that points dislogctl at both.
func devNode(t *testing.T) (*fakelog.Server, map[string]string) {
	t.Helper()
	srv := fakelog.Start(t)
	dataDir := t.TempDir()
	srv.WriteTLSFiles(t, filepath.Join(dataDir, "pki", "dev"), "dev")
	return srv, map[string]string{"DISLOG_ADDR": srv.Addr, "DISLOG_DATA_DIR": dataDir}
}

func TestProduceFromStdinAndConsumeRoundTrip(t *testing.T) {
	is := is.New(t)
	srv, vars := devNode(t)
	srv.AddTopic("orders")
	code, out, errOut := ctl(t, "paid\nshipped\n\ndelivered\n", vars, "produce", "orders", "--batch-records", "2")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	is.Equal(out, "produced 4 records to \"orders\", offsets 0 to 3\n")

	code, out, _ = ctl(t, "", vars, "consume", "orders")
	is.Equal(code, 0)
	is.Equal(out, "paid\nshipped\n\ndelivered\n") // every line is a record, the empty one too
}

func TestProduceArgumentsWithKeyAndHeadersAsJSON(t *testing.T) {
	is := is.New(t)
	srv, vars := devNode(t)
	srv.AddTopic("orders")
	code, out, _ := ctl(t, "", vars, "produce", "orders", "--key", "o-17", "-H", "source=web", "-o", "json", "paid", "\xff\xfe")
	is.Equal(code, 0)
	var summary map[string]any
	is.NoErr(json.Unmarshal([]byte(out), &summary))
	is.Equal(summary["records"], 2.0)
	is.Equal(summary["first_offset"], 0.0)
	is.Equal(summary["last_offset"], 1.0)

	code, out, _ = ctl(t, "", vars, "consume", "orders", "-o", "json")
	is.Equal(code, 0)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	is.Equal(len(lines), 2)
	var first, second jsonRecord
	is.NoErr(json.Unmarshal([]byte(lines[0]), &first))
	is.NoErr(json.Unmarshal([]byte(lines[1]), &second))
	is.Equal(*first.Key, "o-17")
	is.Equal(*first.Value, "paid")
	is.Equal(first.Headers[0].Key, "source")
	is.Equal(*first.Headers[0].Value, "web")
	is.Equal(second.Offset, uint64(1))
	is.Equal(second.Value, nil)
	is.Equal(*second.ValueBase64, "//4=") // bytes that are not UTF-8 come as base64
}

func TestProduceWithKeySeparator(t *testing.T) {
	is := is.New(t)
	srv, vars := devNode(t)
	srv.AddTopic("orders")
	code, _, _ := ctl(t, "o-1:paid\no-2:shipped:late\n", vars, "produce", "orders", "--key-separator", ":")
	is.Equal(code, 0)
	recs := srv.Records("orders")
	is.Equal(string(recs[0].Key), "o-1")
	is.Equal(string(recs[0].Value), "paid")
	is.Equal(string(recs[1].Key), "o-2")
	is.Equal(string(recs[1].Value), "shipped:late")

	code, _, errOut := ctl(t, "no separator\n", vars, "produce", "orders", "--key-separator", ":")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, `record 1 has no key separator ":"`))
}

func TestConsumeFromOffsetWithLimit(t *testing.T) {
	is := is.New(t)
	srv, vars := devNode(t)
	srv.AddTopic("t")
	code, _, _ := ctl(t, "a\nb\nc\nd\ne\n", vars, "produce", "t")
	is.Equal(code, 0)
	code, out, _ := ctl(t, "", vars, "consume", "t", "--offset", "1", "-n", "2")
	is.Equal(code, 0)
	is.Equal(out, "b\nc\n")
	code, out, _ = ctl(t, "", vars, "tail", "t", "-n", "2")
	is.Equal(code, 0)
	is.Equal(out, "d\ne\n")
}

func TestProgressLineWithFlag(t *testing.T) {
	is := is.New(t)
	srv, vars := devNode(t)
	srv.AddTopic("t")
	code, _, errOut := ctl(t, "a\nb\n", vars, "produce", "t", "--progress")
	is.Equal(code, 0)
	is.True(strings.HasPrefix(errOut, "produced 2 records, "))
	is.True(strings.Contains(errOut, "records/s"))
	code, _, errOut = ctl(t, "", vars, "consume", "t", "--progress")
	is.Equal(code, 0)
	is.True(strings.HasPrefix(errOut, "consumed 2 records, "))
	code, _, errOut = ctl(t, "", vars, "consume", "t")
	is.Equal(code, 0)
	is.Equal(errOut, "") // not a terminal, no --progress: no progress line
}

func TestErrorsSayWhatToDo(t *testing.T) {
	srv, vars := devNode(t)
	srv.AddTopic("t")
	noDev := map[string]string{"DISLOG_ADDR": srv.Addr, "DISLOG_DATA_DIR": t.TempDir()}
	ca, cert, key := fakelog.Start(t).WriteTLSFiles(t, t.TempDir(), "stranger")
	foreign := map[string]string{"DISLOG_ADDR": srv.Addr, "DISLOG_CA": ca, "DISLOG_CERT": cert, "DISLOG_KEY": key}
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"an unknown topic names it", vars, []string{"consume", "nope"}, `topic "nope" does not exist`},
		{"a produce to an unknown topic counts the records lost", vars, []string{"produce", "nope", "x", "y"}, `2 of 2 records not written; the first error: topic "nope" does not exist`},
		{"no dev certificate says how to get one", noDev, []string{"topics", "list"}, "Start a dev node"},
		{"some but not all TLS files", map[string]string{"DISLOG_CA": "ca.pem"}, []string{"topics", "list"}, "give all of --tls-ca-file, --tls-cert-file and --tls-key-file"},
		{"no server at the address", map[string]string{"DISLOG_ADDR": "127.0.0.1:1", "DISLOG_DATA_DIR": vars["DISLOG_DATA_DIR"]}, []string{"servers"}, "no server is listening at 127.0.0.1:1"},
		{"no server at a cluster address", map[string]string{"DISLOG_ADDR": "dislog:///127.0.0.1:1", "DISLOG_DATA_DIR": vars["DISLOG_DATA_DIR"]}, []string{"servers"}, "no server is listening at dislog:///127.0.0.1:1"},
		{"another cluster's certificates", foreign, []string{"servers"}, "the TLS handshake with " + srv.Addr + " failed"},
		{"a bad output format", vars, []string{"topics", "list", "-o", "yaml"}, `--output "yaml": want text or json`},
		{"a bad start time", vars, []string{"consume", "t", "--from-time", "yesterday"}, `--from-time "yesterday": want an RFC 3339 time`},
		{"a bad header", vars, []string{"produce", "t", "-H", "novalue", "x"}, `--header "novalue": want KEY=VALUE`},
		{"a bad offset", vars, []string{"offsets", "commit", "g", "t", "ten"}, `offset "ten": want a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			code, _, errOut := ctl(t, "", tc.vars, tc.args...)
			is.Equal(code, 1)
			is.True(strings.HasPrefix(errOut, "dislogctl: "))
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tc.want)
			}
		})
	}
}

func TestFlagsWinOverTheEnvironment(t *testing.T) {
	is := is.New(t)
	srv, vars := devNode(t)
	srv.AddTopic("t")
	wrong := map[string]string{"DISLOG_ADDR": "127.0.0.1:1", "DISLOG_DATA_DIR": vars["DISLOG_DATA_DIR"]}
	code, out, _ := ctl(t, "", wrong, "--addr", srv.Addr, "tail", "t")
	is.Equal(code, 0)
	is.Equal(out, "")

	ca, cert, key := srv.WriteTLSFiles(t, t.TempDir(), "me")
	tlsVars := map[string]string{"DISLOG_ADDR": srv.Addr, "DISLOG_CA": ca, "DISLOG_CERT": cert, "DISLOG_KEY": key}
	code, _, errOut := ctl(t, "", tlsVars, "tail", "t")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	// produce --key is the records' key; DISLOG_KEY is still the certificate's.
	code, _, errOut = ctl(t, "", tlsVars, "produce", "t", "--key", "k", "v")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	is.Equal(string(srv.Records("t")[0].Key), "k")
}

func TestParseTime(t *testing.T) {
	is := is.New(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	got, err := parseTime("15m", now)
	is.NoErr(err)
	is.Equal(got, now.Add(-15*time.Minute))
	got, err = parseTime("2026-05-01T10:00:00Z", now)
	is.NoErr(err)
	is.Equal(got, time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
	_, err = parseTime("-5m", now)
	is.True(err != nil)
}

func TestDialAddrUsesLoopbackForAnUnspecifiedHost(t *testing.T) {
	is := is.New(t)
	for addr, want := range map[string]string{
		"0.0.0.0:7070":      "127.0.0.1:7070",
		"[::]:7070":         "127.0.0.1:7070",
		":7070":             "127.0.0.1:7070",
		"10.0.0.5:7070":     "10.0.0.5:7070",
		"dislog.local:7070": "dislog.local:7070",

		"dislog:///0.0.0.0:7070, 10.0.0.5:7070": "dislog:///127.0.0.1:7070,10.0.0.5:7070",
	} {
		is.Equal((&app{addr: addr}).dialAddr(), want)
	}
}

func TestClusterAddress(t *testing.T) {
	is := is.New(t)
	c := fakelog.StartCluster(t, 3)
	c.SetLeader(2)
	dataDir := t.TempDir()
	c.Servers[0].WriteTLSFiles(t, filepath.Join(dataDir, "pki", "dev"), "dev")
	// Two of the three servers as seeds; the client finds the third, and the leader.
	vars := map[string]string{"DISLOG_ADDR": c.Target(0, 1), "DISLOG_DATA_DIR": dataDir}

	code, _, errOut := ctl(t, "", vars, "topics", "create", "orders")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	code, out, errOut := ctl(t, "paid\nshipped\n", vars, "produce", "orders")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	is.Equal(out, "produced 2 records to \"orders\", offsets 0 to 1\n")
	is.Equal(c.Servers[2].Calls("ProduceStream"), 1)
	code, out, _ = ctl(t, "", vars, "consume", "orders")
	is.Equal(code, 0)
	is.Equal(out, "paid\nshipped\n")
	is.Equal(c.Servers[2].Calls("ConsumeStream"), 0) // read from a follower

	code, out, _ = ctl(t, "", vars, "servers", "-o", "json")
	is.Equal(code, 0)
	var servers []struct {
		ID       string `json:"id"`
		RPCAddr  string `json:"rpc_addr"`
		IsLeader bool   `json:"is_leader"`
		IsVoter  bool   `json:"is_voter"`
	}
	is.NoErr(json.Unmarshal([]byte(out), &servers))
	is.Equal(len(servers), 3)
	for i, s := range servers {
		is.Equal(s.RPCAddr, c.Servers[i].Addr)
		is.Equal(s.IsLeader, i == 2)
		is.True(s.IsVoter)
	}
}

// --help prints boolean flags bare, as they are given, on every command.
func TestHelpPrintsBooleanFlagsBare(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"tail", "--help"}, {"topics", "create", "--help"}} {
		code, stdout, _ := ctl(t, "", nil, args...)
		if code != 0 || strings.Contains(stdout, "[=true|false]") || !strings.Contains(stdout, "-h, --help ") {
			t.Errorf("dislogctl %s: exit %d, help:\n%s\nwant exit 0, \"-h, --help\" and no \"[=true|false]\"", strings.Join(args, " "), code, stdout)
		}
	}
}

// The TLS flags have the server's names; the old ones work for a release, with a notice, and beat
// the environment as the new ones do.
func TestTheOldTLSFlagNamesStillWorkWithANotice(t *testing.T) {
	s, vars := devNode(t)
	dir := t.TempDir()
	ca, cert, key := s.WriteTLSFiles(t, dir, "alice")
	vars["DISLOG_CA"] = "/nonexistent/ca.pem"
	_, want, _ := ctl(t, "", nil, "--addr", s.Addr, "--tls-ca-file", ca, "--tls-cert-file", cert, "--tls-key-file", key, "servers")
	code, stdout, stderr := ctl(t, "", vars, "--addr", s.Addr, "--tls-ca", ca, "--tls-cert", cert, "--tls-key", key, "servers")
	if code != 0 || !strings.Contains(stderr, "--tls-ca is deprecated: use --tls-ca-file") || stdout != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0, the output %q and a deprecation notice on stderr", code, stdout, stderr, want)
	}
	code, _, stderr = ctl(t, "", vars, "--addr", s.Addr, "--tls-ca-file", ca, "--tls-cert-file", cert, "--tls-key-file", key, "servers")
	if code != 0 || strings.Contains(stderr, "deprecated") {
		t.Fatalf("new names: exit %d, stderr %q; want exit 0 and no notice", code, stderr)
	}
}

// A topic of several partitions on a cluster: created with its layout, described with each
// partition's leader and replicas, produced to by key or by partition, consumed whole or one
// partition at a time, and a group's lag shown per partition.
func TestPartitionedTopics(t *testing.T) {
	is := is.New(t)
	c := fakelog.StartCluster(t, 3)
	c.SetLeader(0)
	dataDir := t.TempDir()
	c.Servers[0].WriteTLSFiles(t, filepath.Join(dataDir, "pki", "dev"), "dev")
	vars := map[string]string{"DISLOG_ADDR": c.Target(), "DISLOG_DATA_DIR": dataDir}

	code, out, errOut := ctl(t, "", vars, "topics", "create", "clicks", "--partitions", "3", "--replicas", "3")
	is.Equal(errOut, "")
	is.Equal(code, 0)
	is.Equal(out, "created topic \"clicks\" (3 partitions, 3 replicas each; retention: keep all)\n")
	code, _, errOut = ctl(t, "", vars, "topics", "create", "bad", "--partitions", "2000")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, "(InvalidArgument)"))

	code, out, _ = ctl(t, "", vars, "produce", "clicks", "--key", "user-7", "a", "b")
	is.Equal(code, 0)
	want := client.KeyPartition([]byte("user-7"), 3)
	is.Equal(out, fmt.Sprintf("produced 2 records to \"clicks\" partition %d, offsets 0 to 1\n", want))
	is.Equal(len(c.PartitionRecords("clicks", want)), 2)
	other := (want + 1) % 3
	code, out, _ = ctl(t, "", vars, "produce", "clicks", "--partition", fmt.Sprint(other), "c")
	is.Equal(code, 0)
	is.Equal(out, fmt.Sprintf("produced 1 record to \"clicks\" partition %d at offset 0\n", other))
	code, out, _ = ctl(t, "o-1:x\no-2:y\no-3:z\no-4:w\no-5:v\no-6:u\n", vars, "produce", "clicks", "--key-separator", ":", "-o", "json")
	is.Equal(code, 0)
	var summary produceSummary
	is.NoErr(json.Unmarshal([]byte(out), &summary))
	is.Equal(summary.Records, 6)
	n := 0
	for _, r := range summary.Partitions {
		n += r.Records
	}
	is.Equal(n, 6)

	code, out, _ = ctl(t, "", vars, "topics", "describe", "clicks")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "partitions:         3\n"))
	is.True(strings.Contains(out, "records:            9\n"))
	is.True(strings.Contains(out, "PARTITION  LEADER  REPLICAS              IN-SYNC"))
	is.True(strings.Contains(out, "\n1          fake-1  fake-1,fake-2,fake-0  fake-1,fake-2,fake-0"))
	code, out, _ = ctl(t, "", vars, "topics", "describe", "clicks", "-o", "json")
	is.Equal(code, 0)
	var topic jsonTopic
	is.NoErr(json.Unmarshal([]byte(out), &topic))
	is.Equal(topic.Partitions, 3)
	is.Equal(topic.PartitionInfo[2].Leader, "fake-2")
	code, out, _ = ctl(t, "", vars, "topics", "list")
	is.Equal(code, 0)
	is.True(strings.Contains(out, "TOPIC   PARTITIONS  REPLICAS  RECORDS"))
	is.True(strings.Contains(out, "clicks  3           3         9"))

	// Every partition by default, as Kafka's console consumer.
	code, out, _ = ctl(t, "", vars, "consume", "clicks")
	is.Equal(code, 0)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	is.Equal(lines, []string{"a", "b", "c", "u", "v", "w", "x", "y", "z"})
	code, out, _ = ctl(t, "", vars, "consume", "clicks", "--partition", fmt.Sprint(want), "--offset", "1", "-o", "json")
	is.Equal(code, 0)
	var rec jsonRecord
	is.NoErr(json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &rec))
	is.Equal(rec.Partition, want)
	is.Equal(rec.Offset, uint64(1))
	is.Equal(*rec.Value, "b")
	code, _, errOut = ctl(t, "", vars, "consume", "clicks", "--offset", "1")
	is.Equal(code, 1)
	is.True(strings.Contains(errOut, "name one with --partition"))
	code, out, _ = ctl(t, "", vars, "tail", "clicks", "--partition", fmt.Sprint(want), "-n", "1")
	is.Equal(code, 0)
	inWant := c.PartitionRecords("clicks", want)
	is.Equal(out, string(inWant[len(inWant)-1].Value)+"\n")

	code, _, _ = ctl(t, "", vars, "offsets", "commit", "g", "clicks", "1", "--partition", fmt.Sprint(want))
	is.Equal(code, 0)
	code, out, _ = ctl(t, "", vars, "offsets", "fetch", "g", "clicks", "--partition", fmt.Sprint(want))
	is.Equal(code, 0)
	is.Equal(out, "1\n")
	code, out, _ = ctl(t, "", vars, "offsets", "lag", "g", "clicks", "-o", "json")
	is.Equal(code, 0)
	var lags []jsonLag
	is.NoErr(json.Unmarshal([]byte(out), &lags))
	is.Equal(len(lags), 3)
	var total uint64
	for _, l := range lags {
		is.Equal(l.Committed != nil, l.Partition == want)
		total += l.Lag
	}
	is.Equal(total, uint64(8)) // 9 records, 1 read
	code, out, _ = ctl(t, "", vars, "offsets", "lag", "g", "clicks")
	is.Equal(code, 0)
	rows := strings.Split(strings.TrimSpace(out), "\n")
	is.Equal(strings.Fields(rows[0]), []string{"PARTITION", "COMMITTED", "NEXT", "LAG"})
	is.Equal(strings.Fields(rows[1+want]), []string{fmt.Sprint(want), "1", fmt.Sprint(len(inWant)), fmt.Sprint(len(inWant) - 1)})
	is.Equal(strings.Fields(rows[4]), []string{"total", "8"})
}
