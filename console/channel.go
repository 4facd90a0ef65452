package console

import (
	"encoding/binary"
	"fmt"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Limits on what a pty-req may ask for.
const (
	maxTermLen   = 64
	maxTermCols  = 1000
	maxTermRows  = 1000
	maxPtyModes  = 4096
	reqQueueSize = 16
)

// sessionChannel accepts a session channel and lets through only the
// requests the console serves: shell, exec, pty-req and window-change. Every
// other request (env, subsystem, x11-req, auth-agent-req@openssh.com,
// signal, break, ...) is refused here, before gliderlabs sees it. A pty-req
// is parsed and checked first, since gliderlabs' own parser panics on some
// malformed ones; and a panic anywhere in the channel's handling ends only
// this channel.
func (s *Server) sessionChannel(srv *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx ssh.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("session channel panicked", "user", conn.User(), "source", sourceIP(conn.RemoteAddr()), "err", fmt.Sprint(r))
		}
	}()
	ssh.DefaultSessionHandler(srv, conn, &filteredChannel{NewChannel: nc, srv: s, user: conn.User()}, ctx)
}

type filteredChannel struct {
	gossh.NewChannel
	srv  *Server
	user string
}

// Accept accepts the channel and returns a request stream with only the
// allowed requests. The filtering goroutine ends when the channel's request
// stream does (the channel or the connection closes).
func (f *filteredChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, in, err := f.NewChannel.Accept()
	if err != nil {
		return nil, nil, fmt.Errorf("accept session channel: %w", err)
	}
	out := make(chan *gossh.Request, reqQueueSize)
	go func() {
		defer close(out)
		for req := range in {
			switch req.Type {
			case "shell", "exec", "window-change":
				out <- req
			case "pty-req":
				if _, ok := parsePtyReq(req.Payload); !ok {
					f.srv.log.Warn("malformed pty-req refused", "user", f.user)
					_ = req.Reply(false, nil)
					continue
				}
				out <- req
			default:
				// env never reaches anything; the rest is not offered.
				if req.WantReply {
					_ = req.Reply(false, nil)
				}
			}
		}
	}()
	return ch, out, nil
}

// parsePtyReq parses a pty-req payload (RFC 4254 6.2) strictly: TERM, width
// and height in characters and pixels, and the encoded modes.
func parsePtyReq(p []byte) (ssh.Pty, bool) {
	term, p, ok := sshString(p, maxTermLen)
	if !ok || len(p) < 16 {
		return ssh.Pty{}, false
	}
	cols := binary.BigEndian.Uint32(p)
	rows := binary.BigEndian.Uint32(p[4:])
	p = p[16:]
	modes, p, ok := sshString(p, maxPtyModes)
	if !ok || len(p) != 0 {
		return ssh.Pty{}, false
	}
	_ = modes
	for _, c := range term {
		if c < 0x21 || c > 0x7e {
			return ssh.Pty{}, false
		}
	}
	pty := ssh.Pty{Term: term, Window: ssh.Window{Width: int(cols), Height: int(rows)}}
	return pty, validPty(pty)
}

func sshString(p []byte, limit int) (string, []byte, bool) {
	if len(p) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(limit) || uint64(len(p)-4) < uint64(n) {
		return "", nil, false
	}
	return string(p[4 : 4+n]), p[4+n:], true
}

// validPty bounds what a terminal may claim to be.
func validPty(pty ssh.Pty) bool {
	return len(pty.Term) <= maxTermLen && pty.Window.Width >= 0 && pty.Window.Width <= maxTermCols &&
		pty.Window.Height >= 0 && pty.Window.Height <= maxTermRows
}
