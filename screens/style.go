package screens

import (
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// styles are the dashboard's looks for one renderer. With the Ascii
// profile every style renders plain text and every glyph is ASCII.
type styles struct {
	ascii bool

	bold, dim, ok, warn, bad, focus, key lipgloss.Style
	badge                                map[string]lipgloss.Style

	// Box drawing: horizontal, vertical, corners; a focused panel's rule.
	h, v, tl, tr, bl, br, hFocus string
	arrowR, arrowL               string
	levels                       []rune
	broken                       rune
}

func newStyles(r *lipgloss.Renderer) styles {
	s := styles{
		ascii: r.ColorProfile() == termenv.Ascii,
		bold:  r.NewStyle().Bold(true),
		dim:   r.NewStyle().Faint(true),
		ok:    r.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "#006B2E", Dark: "#3FD47A"}).Bold(true),
		warn:  r.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "#8A5A00", Dark: "#F2C94C"}).Bold(true),
		bad:   r.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "#B00020", Dark: "#FF6B6B"}).Bold(true),
		focus: r.NewStyle().Foreground(lipgloss.AdaptiveColor{Light: "#0B4F9C", Dark: "#7FB8FF"}).Bold(true),
		key:   r.NewStyle().Bold(true),
	}
	badge := func(bg string) lipgloss.Style {
		return r.NewStyle().Bold(true).Foreground(lipgloss.Color("#FFFFFF")).Background(lipgloss.Color(bg))
	}
	s.badge = map[string]lipgloss.Style{
		"Active":      badge("#1E7D3A"),
		"Standby":     badge("#1F5FA8"),
		"Stopped":     badge("#A33030"),
		"Stand-alone": badge("#8A6D00"),
		"Witness":     badge("#555555"),
		"Unknown":     badge("#555555"),
	}
	if s.ascii {
		s.h, s.v, s.tl, s.tr, s.bl, s.br, s.hFocus = "-", "|", "+", "+", "+", "+", "="
		s.arrowR, s.arrowL = "==>", "<=="
		s.levels = []rune("_.-:=+*#")
		s.broken = 'x'
	} else {
		s.h, s.v, s.tl, s.tr, s.bl, s.br, s.hFocus = "─", "│", "┌", "┐", "└", "┘", "━"
		s.arrowR, s.arrowL = "━━━━▶", "◀━━━━"
		s.levels = []rune("▁▂▃▄▅▆▇█")
		s.broken = '×'
	}
	return s
}

// roleBadge is the header's badge for a role word: reverse colours, or
// brackets in plain ASCII.
func (s styles) roleBadge(word string) string {
	if s.ascii {
		return "[" + word + "]"
	}
	st, ok := s.badge[word]
	if !ok {
		st = s.badge["Unknown"]
	}
	return st.Render(" " + word + " ")
}
