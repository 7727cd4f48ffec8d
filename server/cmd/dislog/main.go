// Command dislog runs a Dislog server.
//
// With no flags it starts a development node on 127.0.0.1:7070 with its data in ./dislog-data,
// where it makes a CA, a server certificate and a client certificate ("dev") on first start, and an
// ACL policy that allows the dev client everything. It prints how to connect.
//
// Every setting is a flag, an environment variable (DISLOG_ and the flag's name in upper case with
// '_' for '-': DISLOG_DATA_DIR) and a key of the TOML config file named by --config (the flag's
// name: data-dir = "/var/lib/dislog"). A flag beats the environment, which beats the file.
//
// Called as dislogctl (through a link of that name), the binary is the command-line client instead
// (package github.com/dislog/dislog/client/ctl): the container image so carries one binary for both.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/dislog/dislog/client/ctl"
)

// version is the release, set at build time (-ldflags "-X main.version=v1.2.3"; make image does).
var version = "dev"

func main() {
	if filepath.Base(os.Args[0]) == "dislogctl" {
		os.Exit(ctl.Main(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newCommand(os.LookupEnv)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "dislog:", err)
		os.Exit(1)
	}
}
