package commands

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitAccepts(t *testing.T) {
	tests := []struct {
		name string
		line string
		want []string
	}{
		{"empty", "", nil},
		{"blank", "  \t ", nil},
		{"one word", "ha_status", []string{"ha_status"}},
		{"flag", "ha_status --json", []string{"ha_status", "--json"}},
		{"surrounding blanks and tabs", " \tha_status \t --json\t", []string{"ha_status", "--json"}},
		{"every allowed punctuation", "a-b_c.d:e/f=g@h,i", []string{"a-b_c.d:e/f=g@h,i"}},
		{"flag with value", "ha_x --node=db-2.example.com:5432", []string{"ha_x", "--node=db-2.example.com:5432"}},
		{"unicode letters and digits", "note Zürich Ωmega ٣", []string{"note", "Zürich", "Ωmega", "٣"}},
		{"double quotes with spaces", `note "planned maintenance, back at 17:00"`, []string{"note", "planned maintenance, back at 17:00"}},
		{"single quotes with spaces", `note 'two  spaces'`, []string{"note", "two  spaces"}},
		{"tab inside quotes", "note \"a\tb\"", []string{"note", "a\tb"}},
		{"empty double quotes", `x ""`, []string{"x", ""}},
		{"empty single quotes", `x '' y`, []string{"x", "", "y"}},
		{"escaped double quote", `note "say \"hi\""`, []string{"note", `say "hi"`}},
		{"escaped backslash", `note "C:\\dir"`, []string{"note", `C:\dir`}},
		{"single quote inside double", `note "it's fine"`, []string{"note", "it's fine"}},
		{"double quote inside single", `note 'say "hi"'`, []string{"note", `say "hi"`}},
		{"adjacent parts join", `a"b c"'d e'f`, []string{`ab cd ef`}},
		{"64 words", strings.TrimSpace(strings.Repeat("w ", 64)), strings.Fields(strings.Repeat("w ", 64))},
		{"4096 bytes", strings.Repeat("a", 4096), []string{strings.Repeat("a", 4096)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.line)
			if err != nil {
				t.Fatalf("Split(%q) error: %v", tt.line, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Split(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

func TestSplitRejects(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		pos     int
		msgPart string // substring the message must contain
	}{
		{"semicolon", "ha_status; reboot", 10, `character ";" at column 10 is not allowed: the console runs one command at a time, nothing reaches a shell`},
		{"semicolon col 12", "ha_status -x;", 13, `character ";" at column 13`},
		{"pipe", "ha_status | grep x", 11, `character "|" at column 11 is not allowed: there are no pipes`},
		{"and-and", "ha_status && reboot", 11, `character "&" at column 11 is not allowed: commands cannot be chained`},
		{"background", "ha_status &", 11, `"&"`},
		{"dollar paren", "ha_status $(reboot)", 11, `character "$" at column 11 is not allowed: there are no variables or command substitution`},
		{"dollar var", "x $HOME", 3, `"$"`},
		{"backtick", "ha_status `reboot`", 11, "character \"`\" at column 11 is not allowed: there is no command substitution"},
		{"redirect out", "ha_status > /tmp/x", 11, `character ">" at column 11 is not allowed: there is no redirection`},
		{"redirect in", "x < /etc/passwd", 3, `character "<" at column 3`},
		{"open paren", "(x)", 1, `character "(" at column 1`},
		{"close paren", "x)", 2, `character ")" at column 2`},
		{"open brace", "x {a,b}", 3, `character "{"`},
		{"close brace", "x}", 2, `character "}"`},
		{"star", "x *", 3, `character "*" at column 3 is not allowed: there are no wildcards`},
		{"question mark", "ha_status?", 10, `character "?" at column 10`},
		{"bang", "!!", 1, `character "!" at column 1 is not allowed: there is no history expansion`},
		{"tilde", "x ~/y", 3, `character "~" at column 3`},
		{"hash", "x # comment", 3, `character "#" at column 3 is not allowed: there are no comments`},
		{"square bracket", "x [ab]", 3, `character "["`},
		{"plus is not listed", "x +1", 3, `character "+" at column 3 is not allowed: words may only contain`},
		{"backslash unquoted", `x a\ b`, 4, `character "\\" at column 4 is not allowed: a backslash is only allowed inside double quotes`},
		{"backslash in single quotes", `x 'a\b'`, 5, `no escapes inside single quotes`},
		{"bad escape in double quotes", `x "a\nb"`, 5, `the backslash at column 5 does not start a valid escape`},
		{"semicolon inside double quotes", `x "a;b"`, 5, `character ";" at column 5`},
		{"dollar inside single quotes", `x '$(reboot)'`, 4, `character "$" at column 4`},
		{"backtick inside double quotes", "x \"`id`\"", 4, "character \"`\" at column 4"},
		{"unterminated double", `note "abc`, 6, `the double quote at column 6 is never closed`},
		{"unterminated single", `note 'abc`, 6, `the single quote at column 6 is never closed`},
		{"trailing backslash in double quotes", `note "abc\`, 6, `never closed`},
		{"newline", "ha_status\nreboot", 10, `control character U+000A at column 10 is not allowed`},
		{"carriage return", "ha_status\r", 10, `control character U+000D`},
		{"nul", "a\x00", 2, `control character U+0000 at column 2`},
		{"escape", "\x1b[2J", 1, `control character U+001B at column 1`},
		{"bell in quotes", "x \"\a\"", 4, `control character U+0007 at column 4`},
		{"del", "x\x7f", 2, `control character U+007F at column 2`},
		{"C1 control", "x\u0085", 2, `control character U+0085 at column 2`},
		{"bidi override", "x \u202e", 3, `character "\u202e" at column 3`},
		{"no-break space", "x\u00a0y", 2, `character "\u00a0" at column 2`},
		{"fullwidth semicolon", "x\uff1b", 2, `character "\uff1b" at column 2`},
		{"invalid UTF-8", "ab\xffcd", 3, `byte 0xff at column 3 is not valid UTF-8`},
		{"truncated UTF-8", "é\xc3", 2, `byte 0xc3 at column 2 is not valid UTF-8`},
		{"column counts characters", "Zürich;", 7, `character ";" at column 7`},
		{"1 MB line", strings.Repeat("a", 1<<20), 0, `the line is 1048576 bytes long; the console accepts at most 4096`},
		{"4097 bytes", strings.Repeat("a", 4097), 0, `at most 4096`},
		{"65 words", strings.Repeat("w ", 65), 129, `word 65 starts at column 129: the console accepts at most 64 words`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			words, err := Split(tt.line)
			if err == nil {
				t.Fatalf("Split(%.40q) = %q, want an error", tt.line, words)
			}
			if words != nil {
				t.Errorf("words = %q alongside an error, want nil", words)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *SyntaxError", err, err)
			}
			if se.Pos != tt.pos {
				t.Errorf("Pos = %d, want %d (%s)", se.Pos, tt.pos, se.Msg)
			}
			if !strings.Contains(se.Msg, tt.msgPart) {
				t.Errorf("Msg = %q, want it to contain %q", se.Msg, tt.msgPart)
			}
			if se.Error() != se.Msg {
				t.Errorf("Error() = %q, want Msg", se.Error())
			}
			if !utf8.ValidString(se.Msg) || strings.ContainsAny(se.Msg, "\x00\x1b\n\r") {
				t.Errorf("message is not safe to print: %q", se.Msg)
			}
		})
	}
}

// TestSplitExactMessage pins one full message, as an operator sees it.
func TestSplitExactMessage(t *testing.T) {
	_, err := Split("ha_stat -x; reboot")
	want := `character ";" at column 11 is not allowed: the console runs one command at a time, nothing reaches a shell`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
