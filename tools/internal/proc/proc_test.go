package proc

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestParseStatCountsFieldsFromTheLastParenthesis(t *testing.T) {
	is := is.New(t)
	// A command name with spaces and parentheses; utime 250 and stime 50 ticks.
	stat := []byte("4242 (dis log) (x)) S 17 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500 18446744073709551615\n")
	cpu, err := parseStatCPU(stat)
	is.NoErr(err)
	is.Equal(cpu, 3*time.Second)
	ppid, err := parseStatPPID(stat)
	is.NoErr(err)
	is.Equal(ppid, 17)
}

func TestParseStatRefusesWhatIsNotAStatLine(t *testing.T) {
	for _, stat := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 0 0", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 9223372036854775807 9 0"} {
		if _, err := parseStatCPU([]byte(stat)); err == nil {
			t.Errorf("parseStatCPU(%q): no error", stat)
		}
	}
}

func TestParseIOAndStatus(t *testing.T) {
	is := is.New(t)
	io := []byte("rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 81920\ncancelled_write_bytes: 4096\n")
	f, err := parseKeyValues(io, ":")
	is.NoErr(err)
	is.Equal(f["write_bytes"], int64(81920))
	is.Equal(f["cancelled_write_bytes"], int64(4096))
	rss, err := parseRSS([]byte("Name:\tdislog\nVmPeak:\t  2000 kB\nVmRSS:\t  1500 kB\nThreads:\t9\n"))
	is.NoErr(err)
	is.Equal(rss, int64(1500<<10))
	_, err = parseRSS([]byte("Name:\tkthreadd\nThreads:\t1\n")) // a kernel thread has no VmRSS
	is.True(err != nil)
}

func TestHasFlag(t *testing.T) {
	is := is.New(t)
	cmdline := []byte("/tmp/dislog\x00--data-dir\x00/tmp/c/node1\x00--node-id=node1\x00")
	is.True(hasFlag(cmdline, "--data-dir", "/tmp/c/node1"))
	is.True(hasFlag(cmdline, "--node-id", "node1"))
	is.True(!hasFlag(cmdline, "--data-dir", "/tmp/c/node2"))
	is.True(!hasFlag(cmdline, "--node-id", "/tmp/c/node1"))
}

// TestReadFindAndTerminateAChild runs a child that burns some CPU and writes a file, finds it by
// its arguments, reads its use, and stops it.
func TestReadFindAndTerminateAChild(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	// The shell spins for a while, then waits until SIGTERM (it keeps its command line, which
	// exec would change).
	script := `trap 'kill $!; exit 0' TERM; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 60 & wait`
	cmd := exec.Command("sh", "-c", script, "sh", dir, "--marker", dir)
	is.NoErr(cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	pid, err := Find(os.Getpid(), "--marker", dir)
	is.NoErr(err)
	is.Equal(pid, cmd.Process.Pid)
	_, err = Find(os.Getpid(), "--marker", dir+"-other")
	is.True(err != nil)
	args, err := Cmdline(pid)
	is.NoErr(err)
	is.Equal(args[len(args)-2:], []string{"--marker", dir})

	deadline := time.Now().Add(30 * time.Second)
	var u Usage
	for {
		u, err = Read(pid)
		is.NoErr(err)
		// The loop's CPU time shows once a clock tick has counted it.
		if u.CPU > 0 && u.RSSBytes > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	is.Equal(u.PID, pid)
	is.True(u.CPU > 0)
	is.True(u.RSSBytes > 0)
	self, err := Read(os.Getpid())
	is.NoErr(err)
	later, err := Read(os.Getpid())
	is.NoErr(err)
	d := later.Sub(self)
	is.True(d.CPU >= 0 && d.WriteBytes >= 0)

	is.NoErr(Terminate(pid, 10*time.Second))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the child did not exit")
	}
	_, err = Read(pid)
	is.True(err != nil)
	_, err = os.Stat("/proc/" + strconv.Itoa(pid))
	is.True(os.IsNotExist(err))
}

// FuzzParseStat: no /proc/<pid>/stat content makes the parsers panic or return a negative time.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (dislog) S 17 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000000 500\n"))
	f.Add([]byte("1 ((a) b)) R 0 1 1 0 -1 0 0 0 0 0 18446744073709551615 1 0"))
	f.Fuzz(func(t *testing.T, stat []byte) {
		if cpu, err := parseStatCPU(stat); err == nil && cpu < 0 {
			t.Fatalf("negative CPU time %v", cpu)
		}
		parseStatPPID(stat)
	})
}

// FuzzParseStatus: no /proc/<pid>/status or io content makes the parsers panic or return a
// negative size.
func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Name:\tdislog\nVmRSS:\t  1500 kB\n"))
	f.Add([]byte("write_bytes: 81920\ncancelled_write_bytes: 4096\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if rss, err := parseRSS(b); err == nil && rss < 0 {
			t.Fatalf("negative RSS %d", rss)
		}
		parseKeyValues(b, ":")
	})
}
