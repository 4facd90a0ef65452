package hapb

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// DialAgent returns a client connection to the Agent service on the node's
// unix socket (the hactl CLI and the console both use it). The socket's file
// permissions are its access control, so the connection has no TLS. The
// connection is lazy: an agent that is down shows in the first call's error.
func DialAgent(socket string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("passthrough:///"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		return nil, fmt.Errorf("agent socket %s: %w", socket, err)
	}
	return conn, nil
}
