package commands

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// forbidden lists every character a shell would interpret. None of them may
// ever come out of Split, quoted or not.
const forbidden = ";|&$`<>(){}[]*?!~#"

// quoteForTest renders words back into a line Split must read identically.
func quoteForTest(words []string) string {
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
	}
	return strings.Join(parts, " ")
}

// FuzzSplit checks that Split never panics, fails only with a well-formed
// *SyntaxError, and never lets a shell character, control character or
// invalid UTF-8 through. The seed corpus is in testdata/fuzz/FuzzSplit.
func FuzzSplit(f *testing.F) {
	f.Add("ha_status --json")
	f.Add(`note "a \"quoted\" word" 'and; this'`)
	f.Fuzz(func(t *testing.T, line string) {
		words, err := Split(line)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *SyntaxError", err)
			}
			if words != nil {
				t.Fatalf("words %q returned with an error", words)
			}
			if se.Pos < 0 || se.Pos > utf8.RuneCountInString(line) || (se.Pos == 0 && len(line) <= MaxLineBytes) {
				t.Fatalf("Pos %d out of range for a line of %d characters: %s", se.Pos, utf8.RuneCountInString(line), se.Msg)
			}
			if se.Msg == "" || !utf8.ValidString(se.Msg) || strings.ContainsFunc(se.Msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("message not printable: %q", se.Msg)
			}
			return
		}
		if len(line) > MaxLineBytes || len(words) > MaxWords {
			t.Fatalf("accepted %d bytes, %d words", len(line), len(words))
		}
		for _, w := range words {
			if !utf8.ValidString(w) {
				t.Fatalf("word %q is not valid UTF-8", w)
			}
			for _, r := range w {
				if strings.ContainsRune(forbidden, r) || (r < 0x20 && r != '\t') || (0x7f <= r && r < 0xa0) {
					t.Fatalf("word %q contains forbidden %q (line %q)", w, r, line)
				}
			}
		}
		// The accepted line itself holds only separators, quotes,
		// backslashes (in double quotes) and word characters.
		for _, r := range line {
			if !(r == ' ' || r == '\t' || r == '"' || r == '\'' || r == '\\' || wordRune(r)) {
				t.Fatalf("accepted line %q contains %q", line, r)
			}
		}
		// Quoting the words back gives a line that splits to the same words
		// (unless quoting pushed it over the length limit).
		quoted := quoteForTest(words)
		if len(quoted) > MaxLineBytes {
			return
		}
		again, err := Split(quoted)
		if err != nil || (len(words) > 0 && !reflect.DeepEqual(again, words)) {
			t.Fatalf("re-quoted %q split to %q, %v", words, again, err)
		}
	})
}
