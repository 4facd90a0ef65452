// Package sysinfo reads a small set of host facts (hostname, memory, disk
// space, uptime and load) for display on the HA agent's dashboard.
//
// Memory, uptime and load come from the Linux proc filesystem; disk space
// comes from statfs(2). The parsing functions are exported and pure so they
// can be tested and fuzzed without a real /proc.
package sysinfo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// DefaultProcDir is the proc filesystem mount point used when
// Reader.ProcDir is empty.
const DefaultProcDir = "/proc"

// DefaultDiskPath is the path whose filesystem is measured when Read is
// called with an empty diskPath.
const DefaultDiskPath = "/"

// Info is a snapshot of host facts.
type Info struct {
	// Hostname is the kernel's host name, as returned by os.Hostname.
	Hostname string

	// MemTotalBytes is the usable RAM (MemTotal in /proc/meminfo), in bytes.
	MemTotalBytes uint64
	// MemAvailableBytes is the kernel's estimate of memory available for
	// new workloads without swapping (MemAvailable in /proc/meminfo), in
	// bytes. It is zero on kernels that do not report it (before 3.14).
	MemAvailableBytes uint64

	// DiskPath is the path whose filesystem was measured.
	DiskPath string
	// DiskTotalBytes is the total size of the filesystem holding DiskPath.
	DiskTotalBytes uint64
	// DiskFreeBytes is the space on that filesystem available to
	// unprivileged users (statfs f_bavail times the block size); it
	// excludes blocks reserved for root.
	DiskFreeBytes uint64

	// HostUptime is the time since the host booted (/proc/uptime).
	HostUptime time.Duration
	// Load1 is the one-minute load average (/proc/loadavg).
	Load1 float64
}

// Reader reads Info from the running host. The zero value is ready to use
// and reads from /proc.
type Reader struct {
	// ProcDir is where the proc filesystem is mounted; empty means
	// DefaultProcDir. Tests may point it at a directory of fake files.
	ProcDir string
}

// Read collects host facts, measuring disk space on the filesystem that
// holds diskPath (DefaultDiskPath if empty).
//
// Read attempts every source even if some fail. If any fail, it returns
// the Info with the fields it could fill and an error joining (errors.Join)
// one wrapped error per failed source, such as
// "read /proc/meminfo: ...". Each wrapped error keeps its cause, so
// errors.Is(err, fs.ErrNotExist) or errors.Is(err, ErrMalformed) work.
// A missing MemAvailable line is not an error; a malformed file is.
func (r Reader) Read(diskPath string) (Info, error) {
	procDir := r.ProcDir
	if procDir == "" {
		procDir = DefaultProcDir
	}
	if diskPath == "" {
		diskPath = DefaultDiskPath
	}
	info := Info{DiskPath: diskPath}
	var errs []error

	if h, err := os.Hostname(); err != nil {
		errs = append(errs, fmt.Errorf("hostname: %w", err))
	} else {
		info.Hostname = h
	}

	if total, avail, err := readMeminfo(filepath.Join(procDir, "meminfo")); err != nil {
		errs = append(errs, err)
	} else {
		info.MemTotalBytes, info.MemAvailableBytes = total, avail
	}

	if up, err := readWith(filepath.Join(procDir, "uptime"), ParseUptime); err != nil {
		errs = append(errs, err)
	} else {
		info.HostUptime = up
	}

	if load, err := readWith(filepath.Join(procDir, "loadavg"), ParseLoadavg); err != nil {
		errs = append(errs, err)
	} else {
		info.Load1 = load
	}

	if total, free, err := statfs(diskPath); err != nil {
		errs = append(errs, fmt.Errorf("statfs %s: %w", diskPath, err))
	} else {
		info.DiskTotalBytes, info.DiskFreeBytes = total, free
	}

	return info, errors.Join(errs...)
}

// readMeminfo opens path and parses it with ParseMeminfo.
func readMeminfo(path string) (total, available uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	total, available, err = ParseMeminfo(f)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	return total, available, nil
}

// maxSmallFile bounds how much of a one-line proc file is read, so a
// misconfigured ProcDir pointing at a huge file cannot exhaust memory.
const maxSmallFile = 4096

// readWith reads the one-line file at path and parses it with parse.
func readWith[T any](path string, parse func(string) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxSmallFile {
		return zero, fmt.Errorf("read %s: %w: longer than %d bytes", path, ErrMalformed, maxSmallFile)
	}
	v, err := parse(string(data))
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", path, err)
	}
	return v, nil
}
