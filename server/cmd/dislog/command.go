package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/client/ctl"
	"github.com/dislog/dislog/server"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// config is every setting of the command.
type config struct {
	configFile        string
	dataDir           string
	addr              string
	advertiseAddr     string
	adminAddr         string
	nodeID            string
	caFile            string
	certFile          string
	keyFile           string
	policyFile        string
	maxRecordBytes    int
	maxMessageBytes   int
	segmentBytes      int
	retentionInterval time.Duration
	shutdownTimeout   time.Duration
	logLevel          string
	logFormat         string
	bootstrap         bool
	bootstrapExpect   int
	join              []string
	serfAddr          string
	failedRemoveAfter time.Duration
	peerSourceIP      string
	raft              server.RaftConfig
}

func newCommand(lookupEnv func(string) (string, bool)) *cobra.Command {
	var c config
	cmd := &cobra.Command{
		Use:   "dislog",
		Short: "Run a Dislog server",
		Long: `Run a Dislog server.

With no flags, dislog starts a development node on 127.0.0.1:7070 with its data in ./dislog-data. On
first start it makes a CA, a server certificate and a client certificate named "dev" there, and an
ACL policy that allows the dev client everything; it prints how to connect.

Give --tls-cert-file, --tls-key-file, --tls-ca-file and --policy-file to run with your own
certificates and ACL (make them with dislog-certs). Every flag can also be set by an environment
variable (DISLOG_DATA_DIR for --data-dir) or a key of the TOML file --config names
(data-dir = "/var/lib/dislog"); a flag beats the environment, which beats the file.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyConfig(cmd.Flags(), lookupEnv)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, c)
		},
	}
	cmd.Version = version
	cmd.AddCommand(newHealthCommand(lookupEnv))
	f := cmd.Flags()
	f.StringVar(&c.configFile, "config", "", "TOML config file whose keys are these flags' names")
	f.StringVar(&c.dataDir, "data-dir", "dislog-data", "directory of the topics, consumer offsets and, in dev mode, certificates and policy")
	f.StringVar(&c.addr, "addr", server.DefaultListenAddr, "address the gRPC API listens on")
	f.StringVar(&c.advertiseAddr, "advertise-addr", "", "address clients are told to dial (default: the listening address)")
	f.StringVar(&c.adminAddr, "admin-addr", server.DefaultAdminAddr, `address of the HTTP admin server (/metrics, /debug/pprof/, /healthz); "" turns it off`)
	f.StringVar(&c.nodeID, "node-id", "", "name of this server (default: the host name)")
	f.StringVar(&c.caFile, "tls-ca-file", "", "CA bundle client certificates must chain to (default: the dev CA)")
	f.StringVar(&c.certFile, "tls-cert-file", "", "server certificate (default: a dev certificate in the data directory)")
	f.StringVar(&c.keyFile, "tls-key-file", "", "server certificate key")
	f.StringVar(&c.policyFile, "policy-file", "", "ACL policy (default in dev mode: <data-dir>/policy.csv, allowing the dev client everything)")
	f.IntVar(&c.maxRecordBytes, "max-record-bytes", server.DefaultMaxRecordBytes, "largest record accepted: its key, headers and value (a value of exactly this size fits)")
	f.IntVar(&c.maxMessageBytes, "max-message-bytes", server.DefaultMaxMessageBytes, "largest gRPC message, which bounds a produce batch")
	f.IntVar(&c.segmentBytes, "segment-bytes", server.DefaultSegmentBytes, "size at which a topic starts a new segment file")
	f.DurationVar(&c.retentionInterval, "retention-interval", time.Minute, "how often retention runs on each topic")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "how long a shutdown waits for calls in flight")
	f.BoolVar(&c.bootstrap, "bootstrap", false, "start a new cluster with this server as its only voter (the default without --join or --bootstrap-expect)")
	f.IntVar(&c.bootstrapExpect, "bootstrap-expect", 0, "start a new cluster once this many servers gossip (give each server of the new cluster the same number)")
	f.StringSliceVar(&c.join, "join", nil, "Serf addresses of servers to join, comma separated")
	f.StringVar(&c.serfAddr, "serf-addr", "", `address Serf gossips on, UDP and TCP (required with --join or --bootstrap-expect)`)
	f.DurationVar(&c.failedRemoveAfter, "failed-remove-after", server.DefaultFailedRemoveAfter, "how long a failed server stays in the Raft configuration before the leader removes it")
	f.StringVar(&c.peerSourceIP, "peer-source-ip", "", "local IP address connections to other servers come from (default: the operating system's choice)")
	rd := server.DefaultRaftConfig()
	f.DurationVar(&c.raft.HeartbeatTimeout, "raft-heartbeat-timeout", rd.HeartbeatTimeout, "how long a follower goes without hearing from the leader before it stands for election")
	f.DurationVar(&c.raft.ElectionTimeout, "raft-election-timeout", rd.ElectionTimeout, "how long a candidate waits for votes before it tries again")
	f.DurationVar(&c.raft.LeaderLeaseTimeout, "raft-leader-lease-timeout", rd.LeaderLeaseTimeout, "how long a leader keeps leading without hearing from a majority (at most --raft-heartbeat-timeout)")
	f.DurationVar(&c.raft.CommitTimeout, "raft-commit-timeout", rd.CommitTimeout, "how long an idle leader waits before it tells followers the commit index")
	f.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&c.logFormat, "log-format", "text", "text or json")
	ctl.PlainBools(cmd)
	return cmd
}

// applyConfig sets every flag not given on the command line from the environment, then from the
// config file, whose every key must be a flag.
func applyConfig(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) error {
	return bindFlags(fs, lookupEnv, true)
}

// bindFlags is applyConfig; a subcommand that has a few of the server's flags (health) is not
// strict, and takes from the server's config file the keys it knows.
func bindFlags(fs *pflag.FlagSet, lookupEnv func(string) (string, bool), strict bool) error {
	var errs []error
	set := func(f *pflag.Flag, value, from string) {
		if err := fs.Set(f.Name, value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", from, f.Name, err))
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			set(f, v, envName(f.Name))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	path, _ := fs.GetString("config")
	if path == "" {
		return nil
	}
	var file map[string]any
	if _, err := toml.DecodeFile(path, &file); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	for key, value := range file {
		f := fs.Lookup(key)
		if f == nil && !strict {
			continue
		}
		if f == nil || key == "config" {
			errs = append(errs, fmt.Errorf("%s: unknown key %q (the keys are the flags' names, see --help)", path, key))
			continue
		}
		if f.Changed {
			continue
		}
		if _, ok := lookupEnv(envName(key)); ok {
			continue
		}
		set(f, fmt.Sprint(value), path)
	}
	return errors.Join(errs...)
}

func envName(flag string) string {
	return "DISLOG_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func run(cmd *cobra.Command, c config) error {
	log, err := newLogger(cmd.ErrOrStderr(), c.logLevel, c.logFormat)
	if err != nil {
		return err
	}
	tlsFiles := authz.TLSOptions{CAFile: c.caFile, CertFile: c.certFile, KeyFile: c.keyFile}
	var dev *devSetup
	switch given := countSet(c.caFile, c.certFile, c.keyFile); {
	case given == 0:
		if dev, err = ensureDev(c.dataDir, c.nodeID, c.addr, c.advertiseAddr, c.policyFile == ""); err != nil {
			return err
		}
		tlsFiles = dev.server
		if c.policyFile == "" {
			c.policyFile = dev.policyFile
		}
		if dev.created {
			log.Info("made a development CA and certificates", slog.String("dir", filepath.Join(c.dataDir, pkiDir)))
		}
	case given < 3:
		return errors.New("give all of --tls-ca-file, --tls-cert-file and --tls-key-file, or none for dev certificates")
	case c.policyFile == "":
		return errors.New("--policy-file is required with your own certificates")
	}

	opts := []server.Option{
		server.WithDataDir(c.dataDir),
		server.WithListenAddr(c.addr),
		server.WithAdvertiseAddr(c.advertiseAddr),
		server.WithAdminAddr(c.adminAddr),
		server.WithNodeID(c.nodeID),
		server.WithTLS(tlsFiles),
		server.WithPolicyFile(c.policyFile),
		server.WithMaxRecordBytes(c.maxRecordBytes),
		server.WithMaxMessageBytes(c.maxMessageBytes),
		server.WithSegmentBytes(c.segmentBytes),
		server.WithRetentionInterval(c.retentionInterval),
		server.WithShutdownTimeout(c.shutdownTimeout),
		server.WithLogger(log),
	}
	if (len(c.join) > 0 || c.bootstrapExpect > 0) && c.serfAddr == "" {
		return errors.New("--join and --bootstrap-expect need --serf-addr")
	}
	opts = append(opts,
		server.WithBootstrap(c.bootstrap),
		server.WithBootstrapExpect(c.bootstrapExpect),
		server.WithJoin(c.join...),
		server.WithSerfAddr(c.serfAddr),
		server.WithFailedRemoveAfter(c.failedRemoveAfter),
		server.WithPeerSourceIP(c.peerSourceIP),
		server.WithRaft(c.raft),
	)
	srv, err := server.New(opts...)
	if err != nil {
		return err
	}
	printBanner(cmd.OutOrStdout(), srv, c, dev)
	return srv.Serve(cmd.Context())
}

func countSet(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}

// printBanner tells a person how to connect. Its first line is "dislog: serving on ADDR", which
// scripts may read.
func printBanner(w io.Writer, srv *server.Server, c config, dev *devSetup) {
	fmt.Fprintf(w, "dislog: serving on %s\n", srv.Addr())
	if a := srv.SerfAddr(); a != "" {
		fmt.Fprintf(w, "  serf:    %s\n", a)
	}
	if a := srv.AdminAddr(); a != "" {
		fmt.Fprintf(w, "  admin:   http://%s/metrics, /debug/pprof/, /healthz, /livez, /readyz\n", a)
	}
	fmt.Fprintf(w, "  data:    %s\n", c.dataDir)
	fmt.Fprintf(w, "  policy:  %s\n", c.policyFile)
	if dev == nil {
		return
	}
	host := srv.Addr()
	if h, port, err := net.SplitHostPort(host); err == nil && (h == "" || net.ParseIP(h).IsUnspecified()) {
		host = net.JoinHostPort("127.0.0.1", port)
	}
	cl := dev.client
	dataDir := c.dataDir
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	fmt.Fprintf(w, `
Development mode: connect as the client %q, which the policy allows everything:
  CA:   %s
  cert: %s
  key:  %s

  dislogctl --addr %s --data-dir %s servers
    (dislogctl: go install ./client/cmd/dislogctl in the repository, or make bin for ./bin/dislogctl)

  grpcurl -cacert %s -cert %s -key %s \
    -d '{"topic": "hello"}' %s dislog.v1.LogService/CreateTopic

From Go: client.Dial(%q, client.WithTLSFiles(%q, %q, %q))
`, devClientName, cl.CAFile, cl.CertFile, cl.KeyFile, host, dataDir, cl.CAFile, cl.CertFile, cl.KeyFile, host,
		host, cl.CAFile, cl.CertFile, cl.KeyFile)
}
