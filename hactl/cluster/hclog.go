package cluster

import (
	"context"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// slogHC adapts slog to the hclog.Logger that hashicorp/raft wants, so
// raft's lines are structured like the rest of the agent's.
type slogHC struct {
	l     *slog.Logger
	name  string
	args  []any
	level hclog.Level
}

func newHCLog(l *slog.Logger, name string) hclog.Logger {
	return &slogHC{l: l, name: name, level: hclog.Info}
}

func (h *slogHC) Log(level hclog.Level, msg string, args ...any) {
	if level < h.level {
		return
	}
	var sl slog.Level
	switch {
	case level <= hclog.Debug:
		sl = slog.LevelDebug
	case level == hclog.Info:
		sl = slog.LevelInfo
	case level == hclog.Warn:
		sl = slog.LevelWarn
	default:
		sl = slog.LevelError
	}
	h.l.Log(context.Background(), sl, msg, append(append([]any{}, h.args...), args...)...)
}

func (h *slogHC) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *slogHC) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *slogHC) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *slogHC) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *slogHC) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }
func (h *slogHC) IsTrace() bool                 { return h.level <= hclog.Trace }
func (h *slogHC) IsDebug() bool                 { return h.level <= hclog.Debug }
func (h *slogHC) IsInfo() bool                  { return h.level <= hclog.Info }
func (h *slogHC) IsWarn() bool                  { return h.level <= hclog.Warn }
func (h *slogHC) IsError() bool                 { return h.level <= hclog.Error }
func (h *slogHC) ImpliedArgs() []any            { return h.args }
func (h *slogHC) Name() string                  { return h.name }
func (h *slogHC) SetLevel(l hclog.Level)        { h.level = l }
func (h *slogHC) GetLevel() hclog.Level         { return h.level }

func (h *slogHC) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any{}, h.args...), args...)
	return &c
}

func (h *slogHC) Named(name string) hclog.Logger {
	c := *h
	c.name = h.name + "." + name
	return &c
}

func (h *slogHC) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

func (h *slogHC) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo)
}

func (h *slogHC) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return slog.NewLogLogger(h.l.Handler(), slog.LevelInfo).Writer()
}
