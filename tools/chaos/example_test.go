package chaos_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dislog/dislog/tools/chaos"
)

func ExampleParseFaults() {
	faults, err := chaos.ParseFaults("kill,partition")
	if err != nil {
		panic(err)
	}
	fmt.Println(faults)
	// Output: [kill partition-leader partition-split partition-oneway]
}

// A run of a cluster of three dislog processes, through crashes and partitions for two minutes.
func ExampleRun() {
	rep, err := chaos.Run(context.Background(), chaos.Config{
		Bin: "./dislog", Nodes: 3, Duration: 2 * time.Minute, Seed: 42,
		Faults: []chaos.Fault{chaos.Kill, chaos.PartitionLeader, chaos.PartitionSplit},
	})
	if err != nil {
		panic(err) // the run could not be made: no verdict
	}
	rep.WriteText(os.Stdout)
	if !rep.Valid() {
		os.Exit(1)
	}
}
