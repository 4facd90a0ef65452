package view

import (
	"strings"
	"testing"
)

func TestWrapWords(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		width int
		want  []string
	}{
		{"empty", "", 10, nil},
		{"fits", "a b c", 10, []string{"a b c"}},
		{"breaks", "aaa bbb ccc", 7, []string{"aaa bbb", "ccc"}},
		{"long word alone", "a verylongword b", 5, []string{"a", "verylongword", "b"}},
		{"collapses spaces", "a   b", 10, []string{"a b"}},
		{"counts runes, not bytes", "éé éé", 5, []string{"éé éé"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := WrapWords(tt.in, tt.width)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("WrapWords(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
			}
		})
	}
}
