package hactl_test

import (
	"os"
	"testing"

	"github.com/hapair/hapair/hactl/hactltest"
)

// TestMain removes the hactl binary the lab tests build (once) when they
// are done.
func TestMain(m *testing.M) { os.Exit(hactltest.Main(m)) }
