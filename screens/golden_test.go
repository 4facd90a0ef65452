package screens

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hapair/hapair/hactl/hapb"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestGoldenScreens(t *testing.T) {
	scenarios := []struct {
		name string
		snap func() *hapb.Snapshot
		want []string // phrases the screen must show, whatever the golden says
	}{
		{"healthy", healthy, []string{"[Active]", "The cluster is healthy", "held by primary-node", "primary-node (198.18.0.5)  ==>  secondary-node (198.18.0.10)", "Active Server", "Standby Server"}},
		{"degraded", degraded, []string{"The cluster is degraded: one of the cluster nodes is offline", "Offline", "unreachable: dial", "no replication", "disconnected"}},
		{"handover", handover, []string{"Handover in progress: primary-node hands the Active role to secondary-node", "held by nobody", "[Stopped]"}},
		{"stopped", stopped, []string{"Cluster is not running on this node", "[Stopped]", "held by secondary-node", "Stopped Server", "Active Server"}},
		{"standalone", standalone, []string{"[Stand-alone]", "HA is not enabled on this node", "No peer", "VIP  none"}},
		{"maintenance", maintenance, []string{"Maintenance mode: automatic failover paused", "==>"}},
	}
	for _, sc := range scenarios {
		for _, size := range [][2]int{{80, 24}, {120, 40}} {
			w, h := size[0], size[1]
			t.Run(fmt.Sprintf("%s_%dx%d", sc.name, w, h), func(t *testing.T) {
				d, c := testDashboard(t, Options{Width: w, Height: h, Admin: true})
				feedMinute(d, c, sc.snap())
				frame := d.View()
				checkFrame(t, frame, w, h)
				for _, p := range sc.want {
					if !strings.Contains(frame, p) {
						t.Errorf("screen lacks %q:\n%s", p, frame)
					}
				}
				if strings.ContainsFunc(frame, func(r rune) bool { return r > 0x7e || r < 0x20 && r != '\n' }) {
					t.Errorf("ASCII screen has a non-ASCII or control character:\n%q", frame)
				}
				golden(t, filepath.Join("testdata", fmt.Sprintf("%s_%dx%d.golden", sc.name, w, h)), frame)
			})
		}
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test ./screens -run TestGoldenScreens -update): %v", err)
	}
	if string(want) != got+"\n" {
		t.Errorf("screen differs from %s (rerun with -update if intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
