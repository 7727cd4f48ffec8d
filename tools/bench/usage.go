package bench

import (
	"fmt"
	"os"

	"github.com/dislog/dislog/tools/internal/proc"
)

// Process is a server process on this machine, whose use of CPU, disk and memory a run measures.
type Process struct {
	// Name says which server it is, such as its node ID.
	Name string
	PID  int
}

// ServerUsage is what one server process used during the measurement, from /proc.
type ServerUsage struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// Restarted is set when the server's process at the end was another than at the start (a
	// failover killed it) or could not be read: the other fields are then zero.
	Restarted bool `json:"restarted,omitempty"`
	// CPUSeconds is its CPU time (user and system, every thread), and Cores that over the
	// measurement's length: the share of one core it kept busy.
	CPUSeconds float64 `json:"cpu_seconds"`
	Cores      float64 `json:"cores"`
	// WriteBytes is what it sent to the storage layer (write_bytes of /proc/<pid>/io), and
	// WritePerRecordByte that over the bytes of record data (key and value) acknowledged.
	WriteBytes          int64   `json:"write_bytes"`
	CancelledWriteBytes int64   `json:"cancelled_write_bytes"`
	WritePerRecordByte  float64 `json:"write_bytes_per_acked_byte,omitempty"`
	// RSSBytes is its resident memory at the end.
	RSSBytes int64 `json:"rss_bytes"`
	// CPUOfMean and WriteOfMean are its CPU time and write bytes over the mean of the servers
	// measured: 1 is exactly balanced.
	CPUOfMean   float64 `json:"cpu_of_mean"`
	WriteOfMean float64 `json:"write_of_mean"`
}

// ClusterUsage adds up the servers measured.
type ClusterUsage struct {
	Servers    int     `json:"servers"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUMicrosPerRecord is the servers' CPU time over the records acknowledged (produced; a
	// replay: read).
	CPUMicrosPerRecord float64 `json:"cpu_us_per_record,omitempty"`
	WriteBytes         int64   `json:"write_bytes"`
	// WritePerRecordByte is the mean of the servers' (so 1 when each server writes each byte
	// of record data once).
	WritePerRecordByte float64 `json:"write_bytes_per_acked_byte,omitempty"`
	// MaxCPUOfMean and MaxWriteOfMean are the largest of the servers' CPUOfMean and
	// WriteOfMean: how far the busiest server is from the mean.
	MaxCPUOfMean   float64 `json:"max_cpu_of_mean"`
	MaxWriteOfMean float64 `json:"max_write_of_mean"`
	// ClientCPUSeconds is this process's CPU time: the clients (and a --cluster 1 node).
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
}

// usageProbe is the readings at the start of a measurement.
type usageProbe struct {
	list  func() ([]Process, error)
	start map[string]proc.Usage
	procs []Process
	self  proc.Usage
	err   error
}

// startUsage reads every process's use so far; the end of the measurement reads them again.
func startUsage(list func() ([]Process, error)) *usageProbe {
	u := &usageProbe{list: list, start: map[string]proc.Usage{}}
	if u.procs, u.err = list(); u.err != nil {
		return u
	}
	for _, p := range u.procs {
		r, err := proc.Read(p.PID)
		if err != nil {
			u.err = fmt.Errorf("bench: server %s: %w", p.Name, err)
			return u
		}
		u.start[p.Name] = r
	}
	u.self, u.err = proc.Read(os.Getpid())
	return u
}

// finish reads the processes again and returns what each used since the start, for records
// acknowledged of recordBytes bytes of record data, over elapsed seconds.
func (u *usageProbe) finish(elapsed float64, records, recordBytes int64) ([]ServerUsage, *ClusterUsage, error) {
	if u.err != nil {
		return nil, nil, u.err
	}
	now, err := u.list()
	if err != nil {
		return nil, nil, err
	}
	pids := map[string]int{}
	for _, p := range now {
		pids[p.Name] = p.PID
	}
	var servers []ServerUsage
	total := &ClusterUsage{}
	for _, p := range u.procs {
		s := ServerUsage{Name: p.Name, PID: p.PID}
		end, err := proc.Read(p.PID)
		if err != nil || pids[p.Name] != p.PID {
			s.Restarted = true
			servers = append(servers, s)
			continue
		}
		used := end.Sub(u.start[p.Name])
		s.CPUSeconds = used.CPU.Seconds()
		s.WriteBytes, s.CancelledWriteBytes, s.RSSBytes = used.WriteBytes, used.CancelledWriteBytes, used.RSSBytes
		if elapsed > 0 {
			s.Cores = s.CPUSeconds / elapsed
		}
		if recordBytes > 0 {
			s.WritePerRecordByte = float64(s.WriteBytes) / float64(recordBytes)
		}
		total.Servers++
		total.CPUSeconds += s.CPUSeconds
		total.WriteBytes += s.WriteBytes
		servers = append(servers, s)
	}
	if self, err := proc.Read(os.Getpid()); err == nil {
		total.ClientCPUSeconds = self.Sub(u.self).CPU.Seconds()
	}
	if total.Servers == 0 {
		return servers, total, nil
	}
	meanCPU := total.CPUSeconds / float64(total.Servers)
	meanWrite := float64(total.WriteBytes) / float64(total.Servers)
	for i := range servers {
		s := &servers[i]
		if s.Restarted {
			continue
		}
		if meanCPU > 0 {
			s.CPUOfMean = s.CPUSeconds / meanCPU
		}
		if meanWrite > 0 {
			s.WriteOfMean = float64(s.WriteBytes) / meanWrite
		}
		total.MaxCPUOfMean = max(total.MaxCPUOfMean, s.CPUOfMean)
		total.MaxWriteOfMean = max(total.MaxWriteOfMean, s.WriteOfMean)
	}
	if records > 0 {
		total.CPUMicrosPerRecord = total.CPUSeconds * 1e6 / float64(records)
	}
	if recordBytes > 0 {
		total.WritePerRecordByte = meanWrite / float64(recordBytes)
	}
	return servers, total, nil
}
