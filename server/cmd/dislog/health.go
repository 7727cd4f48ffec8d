package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/dislog/dislog/server"
	"github.com/spf13/cobra"
)

// newHealthCommand asks the server on this host whether it serves: what a container HEALTHCHECK
// or a systemd watchdog runs, in an image with no shell and no curl.
func newHealthCommand(lookupEnv func(string) (string, bool)) *cobra.Command {
	var adminAddr, configFile string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 if the server on this host serves, 1 if not (a container HEALTHCHECK)",
		Long: `health asks the admin server of the dislog on this host for /healthz and exits 0 when it
answers ok: the server runs and knows a leader, so it can take writes. It reads --admin-addr
like the server does: from the flag, DISLOG_ADMIN_ADDR, or the config file --config names. An
admin address on 0.0.0.0 or :: is asked on loopback.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindFlags(cmd.Flags(), lookupEnv, false)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if err := checkHealth(ctx, adminAddr); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "the server's TOML config file, for its admin-addr")
	f.StringVar(&adminAddr, "admin-addr", server.DefaultAdminAddr, "address of the server's HTTP admin server")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	return cmd
}

// errNoAdmin is the answer of health when the server's admin server is off.
var errNoAdmin = errors.New("the admin server is off (--admin-addr \"\"): health has nothing to ask")

// checkHealth asks the admin server at addr for /healthz.
func checkHealth(ctx context.Context, addr string) error {
	if addr == "" {
		return errNoAdmin
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--admin-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// No proxy from the environment: the server is on this host.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not healthy: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}
