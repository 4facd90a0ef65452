package pairing

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

var tokenFormat = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}$`)

func TestNewTokenFormatAndEntropy(t *testing.T) {
	if TokenBits < 100 {
		t.Fatalf("TokenBits = %d, want at least 100", TokenBits)
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const n = 2000
	seen := make(map[string]bool, n)
	counts := make(map[rune]int)
	for i := 0; i < n; i++ {
		tok, err := NewToken(10*time.Minute, now)
		if err != nil {
			t.Fatalf("NewToken: %v", err)
		}
		if !tokenFormat.MatchString(tok.Value) {
			t.Fatalf("token %q does not match %s", tok.Value, tokenFormat)
		}
		if !tok.ExpiresAt.Equal(now.Add(10 * time.Minute)) {
			t.Fatalf("ExpiresAt = %s, want now+10m", tok.ExpiresAt)
		}
		if seen[tok.Value] {
			t.Fatalf("token %q generated twice", tok.Value)
		}
		seen[tok.Value] = true
		if got, err := ParseToken(tok.Value); err != nil || got != tok.Value {
			t.Fatalf("ParseToken(%q) = %q, %v; want it unchanged", tok.Value, got, err)
		}
		for _, r := range strings.ReplaceAll(tok.Value, "-", "") {
			counts[r]++
		}
	}
	// Each of the 32 symbols is expected n*20/32 = 1250 times (standard
	// deviation about 35): a loose bound that still catches a biased or
	// truncated alphabet.
	if len(counts) != 32 {
		t.Fatalf("%d distinct symbols used, want 32: %v", len(counts), counts)
	}
	for r, c := range counts {
		if c < 1000 || c > 1500 {
			t.Errorf("symbol %q appears %d times, want about 1250", r, c)
		}
	}
}

func TestNewTokenTTL(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		ok   bool
	}{
		{"zero", 0, false},
		{"negative", -time.Minute, false},
		{"too long", MaxTokenTTL + time.Second, false},
		{"max", MaxTokenTTL, true},
		{"default", DefaultTokenTTL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewToken(tc.ttl, now)
			if (err == nil) != tc.ok {
				t.Errorf("NewToken(%s) error = %v, want ok=%v", tc.ttl, err, tc.ok)
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	const canon = "K7QF-M2XD-9WRT-B4NC-HPZE"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"canonical", canon, canon},
		{"lower case", "k7qf-m2xd-9wrt-b4nc-hpze", canon},
		{"no dashes", "K7QFM2XD9WRTB4NCHPZE", canon},
		{"spaces", "K7QF M2XD 9WRT B4NC HPZE", canon},
		{"mixed separators and case", "  k7qf-M2xd 9wrt--b4nC\tHPZE\n", canon},
		{"other grouping", "K7QFM-2XD9W-RTB4N-CHPZE", canon},
		{"confusable letters", "oIlO-0000-0000-0000-0000", "0110-0000-0000-0000-0000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseToken(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ParseToken(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseTokenRejects(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"empty", "", "empty"},
		{"only dashes", "- - -", "empty"},
		{"too short", "K7QF-M2XD-9WRT-B4NC-HPZ", "19 characters, want 20"},
		{"too long", "K7QF-M2XD-9WRT-B4NC-HPZEX", "21 characters, want 20"},
		{"letter U", "K7QF-M2XD-9WRT-B4NC-HPZU", `'U'`},
		{"punctuation", "K7QF-M2XD-9WRT-B4NC-HP.E", `'.'`},
		{"non-ASCII", "K7QF-M2XD-9WRT-B4NC-HPZÉ", `'É'`},
		{"fullwidth digit", "K7QF-M2XD-9WRT-B4NC-HPZ１", `'１'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseToken(tc.in)
			if err == nil {
				t.Fatalf("ParseToken(%q) = %q, want an error", tc.in, got)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			if len(tc.in) > 8 && strings.Contains(err.Error(), tc.in[:8]) {
				t.Errorf("error %q repeats the token", err)
			}
		})
	}
}

func TestTokenRedacted(t *testing.T) {
	tok, err := NewToken(time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v %+v %s", tok, tok, tok)} {
		if strings.Contains(s, tok.Value) {
			t.Errorf("formatted token %q reveals its value", s)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", tok)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "token", tok)
	if strings.Contains(buf.String(), tok.Value) {
		t.Errorf("logged token reveals its value: %s", buf.String())
	}
}
