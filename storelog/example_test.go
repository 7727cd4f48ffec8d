package storelog_test

import (
	"fmt"
	"os"

	"github.com/dislog/dislog/storelog"
)

func Example() {
	dir, _ := os.MkdirTemp("", "storelog-example")
	defer os.RemoveAll(dir)

	log, err := storelog.Open(dir, storelog.Options{}) // fsync every batch, 64 MiB segments
	if err != nil {
		panic(err)
	}
	first, _ := log.AppendBatch([][]byte{[]byte("hello"), []byte("world")})
	off, _ := log.Append([]byte("!"))
	fmt.Println("batch at", first, "then", off)

	for rec, err := range log.Scan(log.LowestOffset(), log.NextOffset()) {
		if err != nil {
			panic(err)
		}
		fmt.Println(rec.Offset, string(rec.Value))
	}
	_, err = log.Read(3)
	fmt.Println(err)
	log.Close()
	// Output:
	// batch at 0 then 2
	// 0 hello
	// 1 world
	// 2 !
	// storelog: offset out of range: offset 3, the log holds [0, 3)
}
