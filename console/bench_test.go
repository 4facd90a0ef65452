package console

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// reportLatencies reports the median and 95th percentile of ds in ms.
func reportLatencies(b *testing.B, ds []time.Duration, prefix string) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(ds[len(ds)/2]), prefix+"ms-median/op")
	b.ReportMetric(ms(ds[len(ds)*95/100]), prefix+"ms-p95/op")
}

// execStatus is one scripted call end to end with the x/crypto client: TCP
// connect, handshake, ed25519 key authentication, exec ha_status, exit status.
func execStatus(b *testing.B, ts *testServer) {
	c, err := ts.dial("admin", gossh.PublicKeys(ts.adminKey))
	if err != nil {
		b.Fatal(err)
	}
	r := runExec(c, "ha_status")
	c.Close()
	if r.err != nil || r.code != 0 {
		b.Fatalf("ha_status: %+v", r)
	}
}

// BenchmarkExecStatus: `ssh admin@node ha_status` end to end against the
// in-process console (the agent is a canned gRPC server on a unix socket).
func BenchmarkExecStatus(b *testing.B) {
	ts := newTestServer(b)
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		execStatus(b, ts)
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, ds, "")
}

// BenchmarkExecStatusOpenSSH: the same with the real OpenSSH client process
// (its start-up included), as an operator's script runs it.
func BenchmarkExecStatusOpenSSH(b *testing.B) {
	bin := lookSSH(b)
	ts := newTestServer(b)
	dir := b.TempDir()
	key := writeKeyPair(b, dir, "id")
	pub, err := os.ReadFile(key + ".pub")
	must(b, err)
	_, err = ts.srv.Users().AddKey("admin", pub)
	must(b, err)
	args := sshArgs(ts, knownHosts(b, ts, dir), "admin", []string{"-i", key}, "ha_status")
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		cmd := exec.Command(bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.Fatalf("ssh: %v\n%s", err, out.String())
		}
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, ds, "")
}

// BenchmarkExecStatus50Concurrent: 50 scripted calls at once, each on its own
// connection; one op is the whole batch. Reports the batch's wall time and
// the latency of single sessions within it.
func BenchmarkExecStatus50Concurrent(b *testing.B) {
	const n = 50
	ts := newTestServer(b)
	var mu sync.Mutex
	var each []time.Duration
	var batches []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		var wg sync.WaitGroup
		for j := 0; j < n; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := time.Now()
				c, err := ts.dial("admin", gossh.PublicKeys(ts.adminKey))
				if err != nil {
					b.Error(err)
					return
				}
				r := runExec(c, "ha_status")
				c.Close()
				if r.err != nil || r.code != 0 {
					b.Errorf("ha_status: %+v", r)
					return
				}
				mu.Lock()
				each = append(each, time.Since(s))
				mu.Unlock()
			}()
		}
		wg.Wait()
		batches = append(batches, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, batches, "batch-")
	reportLatencies(b, each, "session-")
}
