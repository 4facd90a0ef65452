package commands

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkStatusCommand measures "ha_status" through Dispatch against a
// real gRPC server on an in-memory connection: the command's own share of
// the console's time (the agent answers from its last sample).
func BenchmarkStatusCommand(b *testing.B) {
	for _, mode := range []string{"ha_status", "ha_status --json"} {
		b.Run(mode, func(b *testing.B) {
			agent := serve(b, newFakeAgent())
			r := Builtin()
			env := &Env{Stdout: io.Discard, Stderr: io.Discard, Role: RoleOperator, Agent: agent,
				Now: func() time.Time { return fixtureNow }}
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if code := r.Dispatch(ctx, env, mode); code != ExitOK {
					b.Fatalf("code %d", code)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "us/command")
		})
	}
}

// BenchmarkRenderStatus measures the text report alone.
func BenchmarkRenderStatus(b *testing.B) {
	s := healthySnapshot()
	b.ReportAllocs()
	for b.Loop() {
		if err := RenderStatus(io.Discard, s, fixtureNow, false); err != nil {
			b.Fatal(err)
		}
	}
}
