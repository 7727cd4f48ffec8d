// Command storelog is a user of github.com/dislog/dislog/storelog: it appends records, closes the
// log, opens it again and reads them back.
package main

import (
	"fmt"
	"os"

	"github.com/dislog/dislog/storelog"
)

func main() {
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "storelog consumer:", err)
		os.Exit(1)
	}
	fmt.Println("storelog: 10 records appended, read back after a reopen")
}

func run(dir string) error {
	l, err := storelog.Open(dir, storelog.Options{})
	if err != nil {
		return err
	}
	for i := range 10 {
		off, err := l.Append(fmt.Appendf(nil, "record %d", i))
		if err != nil {
			return err
		}
		if off != uint64(i) {
			return fmt.Errorf("record %d at offset %d", i, off)
		}
	}
	if err := l.Close(); err != nil {
		return err
	}
	if l, err = storelog.Open(dir, storelog.Options{}); err != nil {
		return err
	}
	defer l.Close()
	n := 0
	for rec, err := range l.Scan(0, l.NextOffset()) {
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("record %d", n); string(rec.Value) != want || rec.Offset != uint64(n) {
			return fmt.Errorf("offset %d holds %q, want %q at %d", rec.Offset, rec.Value, want, n)
		}
		n++
	}
	if n != 10 {
		return fmt.Errorf("read %d records, want 10", n)
	}
	return nil
}
