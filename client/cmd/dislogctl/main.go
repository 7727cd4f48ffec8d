// Command dislogctl is the command-line client of Dislog: it produces and consumes records, follows
// a topic's tail, and manages topics and consumer offsets. `dislogctl --help` lists the commands;
// the package github.com/dislog/dislog/client/ctl documents them.
package main

import (
	"os"

	"github.com/dislog/dislog/client/ctl"
)

func main() { os.Exit(ctl.Main(os.Args[1:])) }
