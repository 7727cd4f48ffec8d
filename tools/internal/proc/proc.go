// Package proc reads what a process on this machine has used, from Linux's /proc: CPU time
// (/proc/<pid>/stat), bytes sent to the storage layer (/proc/<pid>/io) and resident memory
// (/proc/<pid>/status). dislog-bench measures the servers it starts with it, and dislog-chaos finds
// the process of a node to stop it gracefully.
//
//	before, err := proc.Read(pid)
//	... load ...
//	after, err := proc.Read(pid)
//	used := after.Sub(before) // CPU and write bytes over the load; RSS as after
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotFound is returned by Find when no process matches.
var ErrNotFound = errors.New("proc: no such process")

// userHZ is the unit of the times in /proc/<pid>/stat: USER_HZ, which Linux fixes at 100 on every
// architecture Go supports but alpha (and exports as sysconf(_SC_CLK_TCK), which Go cannot call
// without cgo).
const userHZ = 100

// Usage is what a process has used since it started, or, from Sub, between two readings.
type Usage struct {
	// PID is the process.
	PID int
	// CPU is the time its threads ran, in user and kernel mode (utime + stime), with the
	// resolution of a clock tick (10 ms).
	CPU time.Duration
	// WriteBytes is /proc/<pid>/io's write_bytes: the bytes it caused to be sent to the storage
	// layer, counted when a page of the page cache is dirtied (a page dirtied again after it was
	// written back counts again).
	WriteBytes int64
	// CancelledWriteBytes is the part of WriteBytes that never reached the disk because the file
	// was truncated or deleted first.
	CancelledWriteBytes int64
	// ReadBytes is /proc/<pid>/io's read_bytes: what it caused to be read from the storage layer.
	ReadBytes int64
	// RSSBytes is its resident memory (VmRSS) when read; Sub keeps the later reading's.
	RSSBytes int64
}

// Sub returns what the process used between an earlier reading and u.
func (u Usage) Sub(earlier Usage) Usage {
	return Usage{
		PID:                 u.PID,
		CPU:                 u.CPU - earlier.CPU,
		WriteBytes:          u.WriteBytes - earlier.WriteBytes,
		CancelledWriteBytes: u.CancelledWriteBytes - earlier.CancelledWriteBytes,
		ReadBytes:           u.ReadBytes - earlier.ReadBytes,
		RSSBytes:            u.RSSBytes,
	}
}

// Read reads what process pid has used. /proc/<pid>/io is readable only for one's own processes
// (or with CAP_SYS_PTRACE).
func Read(pid int) (Usage, error) {
	u := Usage{PID: pid}
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return u, fmt.Errorf("proc: %w", err)
	}
	if u.CPU, err = parseStatCPU(stat); err != nil {
		return u, fmt.Errorf("proc: %s/stat: %w", dir, err)
	}
	io, err := os.ReadFile(filepath.Join(dir, "io"))
	if err != nil {
		return u, fmt.Errorf("proc: %w", err)
	}
	fields, err := parseKeyValues(io, ":")
	if err != nil {
		return u, fmt.Errorf("proc: %s/io: %w", dir, err)
	}
	u.WriteBytes, u.CancelledWriteBytes, u.ReadBytes = fields["write_bytes"], fields["cancelled_write_bytes"], fields["read_bytes"]
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return u, fmt.Errorf("proc: %w", err)
	}
	if u.RSSBytes, err = parseRSS(status); err != nil {
		return u, fmt.Errorf("proc: %s/status: %w", dir, err)
	}
	return u, nil
}

// parseStatCPU returns utime + stime from the contents of /proc/<pid>/stat. The second field, the
// command name in parentheses, may hold spaces and parentheses itself, so the fields are counted
// from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	// After the name: state (field 3), ppid, ..., utime (field 14), stime (field 15).
	fields := strings.Fields(string(stat[i+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, want at least %d", len(fields), stime+1)
	}
	var ticks uint64
	for _, f := range []string{fields[utime], fields[stime]} {
		n, err := strconv.ParseUint(f, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("CPU time %q: %w", f, err)
		}
		ticks += n
	}
	if ticks > uint64(1<<63-1)/uint64(time.Second/userHZ) {
		return 0, fmt.Errorf("CPU time of %d ticks is out of range", ticks)
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// parseStatPPID returns the parent's pid from the contents of /proc/<pid>/stat.
func parseStatPPID(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return 0, fmt.Errorf("%d fields after the command name, want the parent's pid", len(fields))
	}
	return strconv.Atoi(fields[1])
}

// parseKeyValues reads lines of "key<sep> number" (with an optional unit after the number, which
// it ignores) into a map; lines whose value is not a number are skipped.
func parseKeyValues(b []byte, sep string) (map[string]int64, error) {
	out := map[string]int64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, sep)
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		out[strings.TrimSpace(k)] = n
	}
	if len(out) == 0 {
		return nil, errors.New("no numeric field")
	}
	return out, nil
}

// parseRSS returns VmRSS from the contents of /proc/<pid>/status, which gives it in kB.
func parseRSS(status []byte) (int64, error) {
	fields, err := parseKeyValues(status, ":")
	if err != nil {
		return 0, err
	}
	kb, ok := fields["VmRSS"]
	if !ok {
		return 0, errors.New("no VmRSS")
	}
	if kb < 0 || kb > 1<<43 {
		return 0, fmt.Errorf("VmRSS %d kB is out of range", kb)
	}
	return kb << 10, nil
}

// Find returns the pid of the child of parent whose command line holds flag followed by value
// (as separate arguments, or as flag=value), such as a dislog process of a local cluster by its
// --data-dir.
func Find(parent int, flag, value string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("proc: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// A process may end while it is read: it is then not the one looked for.
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if ppid, err := parseStatPPID(stat); err != nil || ppid != parent {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if hasFlag(cmdline, flag, value) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%w: no child of %d has %s %s", ErrNotFound, parent, flag, value)
}

// Cmdline returns the arguments process pid was started with, the program first.
func Cmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	return splitCmdline(b), nil
}

func splitCmdline(b []byte) []string {
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// hasFlag reports whether a NUL-separated command line holds flag value or flag=value.
func hasFlag(cmdline []byte, flag, value string) bool {
	args := splitCmdline(cmdline)
	for i, a := range args {
		if a == flag+"="+value || a == flag && i+1 < len(args) && args[i+1] == value {
			return true
		}
	}
	return false
}

// Terminate sends SIGTERM to pid and waits until it has exited and been reaped by its parent, or
// until timeout; it fails if the process is still there then.
func Terminate(pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("proc: SIGTERM %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proc: %d still there %s after SIGTERM", pid, timeout)
		}
		<-tick.C
	}
}
