package commands

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestPairingToken(t *testing.T) {
	f := newFakeAgent()
	s := newSession(RoleAdmin, serve(t, f))
	if code := s.run(t, "ha_pairing_token"); code != ExitOK {
		t.Fatalf("code %d stderr %q", code, s.stderr.String())
	}
	out := s.stdout.String()
	if !strings.HasPrefix(out, "Pairing token: K7QF-M2XD-9WRT-B4NC-HPZE\nValid until ") || !strings.Contains(out, "ha_deploy --token") {
		t.Fatalf("stdout %q", out)
	}
	if got := f.Calls(); len(got) != 1 || got[0] != "PairingToken" {
		t.Fatalf("calls %q", got)
	}

	// An operator may not make tokens: a token lets another node join.
	s = newSession(RoleOperator, serve(t, f))
	if code := s.run(t, "ha_pairing_token"); code != ExitPermission {
		t.Fatalf("operator: code %d", code)
	}

	s = newSession(RoleAdmin, serve(t, f))
	if code := s.run(t, "ha_pairing_token now"); code != ExitUsage {
		t.Fatalf("extra argument: code %d", code)
	}

	f = newFakeAgent()
	f.opErr = status.Error(codes.FailedPrecondition, "this node is already in cluster prod")
	s = newSession(RoleAdmin, serve(t, f))
	if code := s.run(t, "ha_pairing_token"); code != ExitFailure ||
		s.stderr.String() != "Error: make a pairing token: this node is already in cluster prod\n" {
		t.Fatalf("code %d stderr %q", code, s.stderr.String())
	}
}
