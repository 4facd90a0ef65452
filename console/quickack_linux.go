package console

import (
	"net"
	"syscall"
)

// quickAck asks Linux to acknowledge what arrives next at once. OpenSSH's
// client does not set TCP_NODELAY for a non-interactive session, so during
// the handshake its next small packet waits (Nagle) for the ACK of the
// previous one, which the kernel would otherwise delay by 40 ms: twice per
// login. TCP_QUICKACK is not sticky, so it is set again before every read.
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
