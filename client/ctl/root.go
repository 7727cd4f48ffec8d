package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dislog/dislog/client"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of the connection flags. They match what `dislog` does with no flags: listen on
// 127.0.0.1:7070 and write a dev CA and client certificate under ./dislog-data/pki.
const (
	defaultAddr    = "127.0.0.1:7070"
	defaultDataDir = "dislog-data"
	// devClientDir is where, under the data directory, a dev node writes the client "dev" files.
	devClientDir = "pki/dev"
	devCAFile    = "ca.pem"
	devCertFile  = "dev.pem"
	devKeyFile   = "dev-key.pem"

	// maxRecvBytes lets a consume take a record as large as a server may be configured to keep.
	maxRecvBytes = 256 << 20
)

// env is what dislogctl takes from the process: streams and environment variables.
type env struct {
	stdin            io.Reader
	stdout, stderr   io.Writer
	stderrIsTerminal bool
	lookupEnv        func(string) (string, bool)
}

// app holds the global flags and the process environment for the commands.
type app struct {
	env
	addr, dataDir, ca, cert, key string
	output                       string
	timeout                      time.Duration
	progress                     bool
}

// exitError is an error that has been reported and sets the exit code.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// run runs dislogctl with args and returns the exit code.
func run(ctx context.Context, args []string, e env) int {
	a := &app{env: e}
	cmd := a.rootCommand()
	cmd.SetArgs(args)
	cmd.SetIn(e.stdin)
	cmd.SetOut(e.stdout)
	cmd.SetErr(e.stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	fmt.Fprintf(e.stderr, "dislogctl: %s\n", a.explain(err))
	return 1
}

func (a *app) rootCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dislogctl",
		Short: "Produce, consume and administer Dislog topics",
		Long: `dislogctl produces and consumes records and administers topics and consumer offsets of a Dislog
cluster.

With no connection flags it talks to the development node that "dislog" starts in the current
directory: it dials 127.0.0.1:7070 with the client certificate in ./dislog-data/pki/dev. Point it
elsewhere with --addr and --data-dir, or give your own certificate with --tls-ca-file, --tls-cert-file and
--tls-key-file. --addr is one server, host:port, or a cluster, dislog:///host1:port,host2:port: then
dislogctl asks those servers for the others, produces to each partition's leader, consumes from a follower, and
follows the cluster through a leader change. Each of those flags may come from the environment instead: DISLOG_ADDR, DISLOG_DATA_DIR,
DISLOG_CA, DISLOG_CERT and DISLOG_KEY (a flag wins over the environment).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.resolve(cmd)
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&a.addr, "addr", defaultAddr, "server address, host:port, or cluster, dislog:///host1:port,host2:port (env DISLOG_ADDR)")
	f.StringVar(&a.dataDir, "data-dir", defaultDataDir, "data directory of a local dev node, whose client certificate is used by default (env DISLOG_DATA_DIR)")
	f.StringVar(&a.ca, "tls-ca-file", "", "CA certificate the server's certificate must chain to (env DISLOG_CA; default <data-dir>/pki/dev/ca.pem)")
	f.StringVar(&a.cert, "tls-cert-file", "", "client certificate (env DISLOG_CERT; default <data-dir>/pki/dev/dev.pem)")
	f.StringVar(&a.key, "tls-key-file", "", "client certificate key (env DISLOG_KEY; default <data-dir>/pki/dev/dev-key.pem)")
	f.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	f.DurationVar(&a.timeout, "timeout", 10*time.Second, "time limit of each call other than produce and consume streams")
	f.BoolVar(&a.progress, "progress", false, "print progress of produce and consume on stderr even when it is not a terminal")

	AddOldTLSFlags(f, &a.ca, &a.cert, &a.key)

	cmd.AddCommand(a.produceCommand(), a.consumeCommand(), a.tailCommand(), a.topicsCommand(), a.serversCommand(), a.offsetsCommand())
	PlainBools(cmd)
	return cmd
}

// envFlags maps connection flags to their environment variables.
var envFlags = map[string]string{
	"addr":          "DISLOG_ADDR",
	"data-dir":      "DISLOG_DATA_DIR",
	"tls-ca-file":   "DISLOG_CA",
	"tls-cert-file": "DISLOG_CERT",
	"tls-key-file":  "DISLOG_KEY",
}

// resolve fills the flags not given from the environment and checks them.
func (a *app) resolve(cmd *cobra.Command) error {
	WarnOldTLSFlags(a.stderr, "dislogctl", cmd.Root().PersistentFlags())
	for name, variable := range envFlags {
		f := cmd.Root().PersistentFlags().Lookup(name)
		if f == nil || Given(cmd.Root().PersistentFlags(), name) {
			continue
		}
		if v, ok := a.lookupEnv(variable); ok && v != "" {
			if err := f.Value.Set(v); err != nil {
				return fmt.Errorf("%s: %w", variable, err)
			}
		}
	}
	if a.output != "text" && a.output != "json" {
		return fmt.Errorf("--output %q: want text or json", a.output)
	}
	return nil
}

// tlsFiles returns the CA, certificate and key to dial with: the ones given, or a dev node's.
func (a *app) tlsFiles() (ca, cert, key string, err error) {
	switch given := countNonEmpty(a.ca, a.cert, a.key); {
	case given == 3:
		return a.ca, a.cert, a.key, nil
	case given > 0:
		return "", "", "", errors.New("give all of --tls-ca-file, --tls-cert-file and --tls-key-file (or DISLOG_CA, DISLOG_CERT and DISLOG_KEY), or none to use a local dev node's certificate")
	}
	dir := filepath.Join(a.dataDir, devClientDir)
	ca, cert, key = filepath.Join(dir, devCAFile), filepath.Join(dir, devCertFile), filepath.Join(dir, devKeyFile)
	for _, f := range []string{ca, cert, key} {
		if _, err := os.Stat(f); err != nil {
			return "", "", "", fmt.Errorf("no dev client certificate: %w\n"+
				"Start a dev node in this directory with `dislog` (go run ./server/cmd/dislog), point --data-dir\n"+
				"(DISLOG_DATA_DIR) at its data directory, or give --tls-ca-file, --tls-cert-file and --tls-key-file", err)
		}
	}
	return ca, cert, key, nil
}

func countNonEmpty(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}

// clusterScheme starts a cluster's address.
const clusterScheme = "dislog:///"

// dialAddr is the target to dial: a listening address on all interfaces is dialed on loopback,
// which the dev certificate covers, and so is each of a cluster's.
func (a *app) dialAddr() string {
	if len(a.addr) >= len(clusterScheme) && strings.EqualFold(a.addr[:len(clusterScheme)], clusterScheme) {
		seeds := strings.Split(a.addr[len(clusterScheme):], ",")
		for i, s := range seeds {
			seeds[i] = loopbackIfUnspecified(strings.TrimSpace(s))
		}
		return clusterScheme + strings.Join(seeds, ",")
	}
	return loopbackIfUnspecified(a.addr)
}

func loopbackIfUnspecified(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// connect dials the server.
func (a *app) connect() (*client.Client, error) {
	ca, cert, key, err := a.tlsFiles()
	if err != nil {
		return nil, err
	}
	return client.Dial(a.dialAddr(), client.WithTLSFiles(ca, cert, key),
		client.WithDialOptions(grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes))))
}

// call runs f with a client and a context bounded by --timeout.
func (a *app) call(cmd *cobra.Command, f func(ctx context.Context, c *client.Client) error) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
	defer cancel()
	return f(ctx, c)
}

// explain turns an error into a message a person can act on: the server's message with its code,
// and what to check when the server cannot be reached.
func (a *app) explain(err error) string {
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := fmt.Sprintf("%s (%s)", st.Message(), st.Code())
	switch st.Code() {
	case codes.Unavailable:
		switch m := st.Message(); {
		case strings.Contains(m, "connection refused"):
			return fmt.Sprintf("no server is listening at %s: start one (dislog), or set --addr or DISLOG_ADDR\n  %s", a.dialAddr(), msg)
		case strings.Contains(m, "certificate") || strings.Contains(m, "tls:") || strings.Contains(m, "x509"):
			return fmt.Sprintf("the TLS handshake with %s failed: is --tls-ca-file the CA of that server, and --tls-cert-file a client certificate it trusts?\n  %s", a.dialAddr(), msg)
		}
	case codes.DeadlineExceeded:
		return fmt.Sprintf("%s did not answer within --timeout %s\n  %s", a.dialAddr(), a.timeout, msg)
	}
	return msg
}
