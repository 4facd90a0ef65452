package sysinfo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// writeProc creates a fake proc directory holding the given files.
func writeProc(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadRealProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("no /proc or statfs support on %s", runtime.GOOS)
	}
	dir := os.TempDir()
	info, err := Reader{}.Read(dir)
	if err != nil {
		t.Fatalf("Read(%q): %v", dir, err)
	}
	t.Logf("%+v", info)
	if info.MemTotalBytes == 0 {
		t.Error("MemTotalBytes = 0")
	}
	if info.DiskTotalBytes == 0 {
		t.Error("DiskTotalBytes = 0")
	}
	if info.DiskFreeBytes > info.DiskTotalBytes {
		t.Errorf("DiskFreeBytes %d > DiskTotalBytes %d", info.DiskFreeBytes, info.DiskTotalBytes)
	}
	if info.MemAvailableBytes > info.MemTotalBytes {
		t.Errorf("MemAvailableBytes %d > MemTotalBytes %d", info.MemAvailableBytes, info.MemTotalBytes)
	}
	if info.Hostname == "" {
		t.Error("Hostname is empty")
	}
	if info.HostUptime <= 0 {
		t.Errorf("HostUptime = %v; want > 0", info.HostUptime)
	}
	if info.DiskPath != dir {
		t.Errorf("DiskPath = %q; want %q", info.DiskPath, dir)
	}
}

func TestReadFakeProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("statfs unsupported on %s", runtime.GOOS)
	}
	proc := writeProc(t, map[string]string{
		"meminfo": "MemTotal: 2048 kB\nMemFree: 1 kB\n", // no MemAvailable: not fatal
		"uptime":  "90.50 10.00\n",
		"loadavg": "1.25 0.50 0.25 2/100 999\n",
	})
	info, err := Reader{ProcDir: proc}.Read("")
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	want := Info{
		Hostname:          info.Hostname,
		MemTotalBytes:     2048 * 1024,
		MemAvailableBytes: 0,
		DiskPath:          DefaultDiskPath,
		DiskTotalBytes:    info.DiskTotalBytes,
		DiskFreeBytes:     info.DiskFreeBytes,
		HostUptime:        90*time.Second + 500*time.Millisecond,
		Load1:             1.25,
	}
	if info != want {
		t.Errorf("Read = %+v; want %+v", info, want)
	}
}

func TestReadErrors(t *testing.T) {
	good := map[string]string{
		"meminfo": "MemTotal: 2048 kB\nMemAvailable: 1024 kB\n",
		"uptime":  "90.50 10.00\n",
		"loadavg": "1.25 0.50 0.25 2/100 999\n",
	}
	tests := []struct {
		name     string
		override map[string]string // file -> content; "" means delete
		diskPath string
		wantSub  []string
		wantIs   error
		check    func(t *testing.T, info Info)
	}{
		{
			name:     "missing meminfo",
			override: map[string]string{"meminfo": ""},
			wantSub:  []string{"read ", "meminfo"},
			wantIs:   fs.ErrNotExist,
			check: func(t *testing.T, info Info) {
				if info.Load1 != 1.25 || info.HostUptime == 0 {
					t.Errorf("other fields not filled on partial failure: %+v", info)
				}
			},
		},
		{
			name:     "malformed meminfo",
			override: map[string]string{"meminfo": "MemTotal: lots kB\n"},
			wantSub:  []string{"meminfo", "not a non-negative integer"},
			wantIs:   ErrMalformed,
		},
		{
			name:     "malformed uptime",
			override: map[string]string{"uptime": "-5\n"},
			wantSub:  []string{"uptime", "not a non-negative decimal"},
			wantIs:   ErrMalformed,
			check: func(t *testing.T, info Info) {
				if info.MemTotalBytes != 2048*1024 {
					t.Errorf("MemTotalBytes not filled on partial failure: %+v", info)
				}
			},
		},
		{
			name:     "missing loadavg",
			override: map[string]string{"loadavg": ""},
			wantSub:  []string{"loadavg"},
			wantIs:   fs.ErrNotExist,
		},
		{
			name:     "oversized loadavg",
			override: map[string]string{"loadavg": strings.Repeat("1 ", 5000)},
			wantSub:  []string{"loadavg", "longer than"},
			wantIs:   ErrMalformed,
		},
		{
			name:     "missing disk path",
			diskPath: filepath.Join(os.TempDir(), "sysinfo-does-not-exist", "x"),
			wantSub:  []string{"statfs ", "sysinfo-does-not-exist"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range good {
				files[k] = v
			}
			for k, v := range tt.override {
				if v == "" {
					delete(files, k)
				} else {
					files[k] = v
				}
			}
			proc := writeProc(t, files)
			disk := tt.diskPath
			if disk == "" {
				disk = proc
			}
			info, err := Reader{ProcDir: proc}.Read(disk)
			if err == nil {
				t.Fatalf("Read succeeded: %+v", info)
			}
			for _, s := range tt.wantSub {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if tt.check != nil {
				tt.check(t, info)
			}
		})
	}
}
