package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/hapair/hapair/hactl/pki"
)

// NodeConfig configures this agent's consensus member.
type NodeConfig struct {
	// Name is the raft server ID: the node's name.
	Name string
	// Listen are the host:port addresses of the raft transport, one per
	// link (heartbeat link first, then the public network).
	Listen []string
	// Dir keeps the raft log, stable store and snapshots.
	Dir string
	// Identity authenticates the transport (mutual TLS, cluster CA).
	Identity *pki.Identity
	// Timers. The leader lease must be shorter than the heartbeat timeout:
	// a leader cut off from the quorum steps down before any follower may
	// start an election.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout, CommitTimeout time.Duration
	Logger                                                               *slog.Logger
	// OnApply is called after every applied entry (from raft's FSM goroutine).
	OnApply func()
}

// DefaultTimers fills the timers for failover in about a second on a LAN.
func (c *NodeConfig) DefaultTimers() {
	c.HeartbeatTimeout = 500 * time.Millisecond
	c.ElectionTimeout = 500 * time.Millisecond
	c.LeaderLeaseTimeout = 250 * time.Millisecond
	c.CommitTimeout = 20 * time.Millisecond
}

// Node is one member of the consensus group. Safe for concurrent use.
type Node struct {
	cfg    NodeConfig
	raft   *raft.Raft
	fsm    *FSM
	trans  *raft.NetworkTransport
	store  *raftboltdb.BoltStore
	notify chan bool
}

// StartNode opens the stores and starts raft. It does not bootstrap.
func StartNode(cfg NodeConfig) (*Node, error) {
	if cfg.HeartbeatTimeout == 0 {
		cfg.DefaultTimers()
	}
	if cfg.Identity == nil {
		return nil, errors.New("raft: no cluster identity")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	hlog := newHCLog(log.With("component", "raft"), "raft")
	store, err := raftboltdb.NewBoltStore(filepath.Join(cfg.Dir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("raft store %s: %w", cfg.Dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("raft snapshots: %w", err)
	}
	stream, err := newTLSStream(cfg.Listen, cfg.Identity)
	if err != nil {
		store.Close()
		return nil, err
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 2 * time.Second,
		Logger:  hlog,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.Logger = hlog
	rc.SnapshotThreshold = 1024
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	if err := raft.ValidateConfig(rc); err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("raft config: %w", err)
	}
	fsm := NewFSM(cfg.OnApply)
	r, err := raft.NewRaft(rc, fsm, store, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	return &Node{cfg: cfg, raft: r, fsm: fsm, trans: trans, store: store, notify: notify}, nil
}

// Server is a voter of the initial configuration.
type Server struct{ Name, Addr string }

// Bootstrap makes the initial configuration if this node has no raft state
// yet; otherwise it does nothing.
func (n *Node) Bootstrap(servers []Server) error {
	var conf raft.Configuration
	for _, s := range servers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.Name), Address: raft.ServerAddress(s.Addr)})
	}
	err := n.raft.BootstrapCluster(conf).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// Apply commits c through the log (leader only) and returns the state
// machine's verdict on it.
func (n *Node) Apply(c Command, timeout time.Duration) error {
	b, err := c.Encode()
	if err != nil {
		return err
	}
	f := n.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		return fmt.Errorf("commit %s: %w", c.Type, err)
	}
	if r, ok := f.Response().(error); ok && r != nil {
		return fmt.Errorf("apply %s: %w", c.Type, r)
	}
	return nil
}

// ApplyRaw commits an encoded command (forwarded by a follower).
func (n *Node) ApplyRaw(b []byte, timeout time.Duration) (uint64, error) {
	c, err := DecodeCommand(b)
	if err != nil {
		return 0, err
	}
	f := n.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		return 0, fmt.Errorf("commit %s: %w", c.Type, err)
	}
	if r, ok := f.Response().(error); ok && r != nil {
		return 0, fmt.Errorf("apply %s: %w", c.Type, r)
	}
	return f.Index(), nil
}

// State is a copy of the replicated state as applied on this node.
func (n *Node) State() *State { return n.fsm.State() }

// LeaderCh reports leadership gained (true) and lost (false). It is the
// node's own notify channel, buffered; raft's LeaderCh is best-effort.
func (n *Node) LeaderCh() <-chan bool { return n.notify }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// RaftState is "Leader", "Follower", "Candidate" or "Shutdown".
func (n *Node) RaftState() string { return n.raft.State().String() }

// Leader is the current leader's name and raft address, if known.
func (n *Node) Leader() (name, addr string) {
	a, id := n.raft.LeaderWithID()
	return string(id), string(a)
}

// Barrier waits until every entry committed before it is applied here.
func (n *Node) Barrier(timeout time.Duration) error {
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("raft barrier: %w", err)
	}
	return nil
}

// VerifyLeader confirms with a quorum that this node still leads.
func (n *Node) VerifyLeader() error { return n.raft.VerifyLeader().Error() }

// TransferLeadership hands leadership to name at addr ("" for any).
func (n *Node) TransferLeadership(name, addr string) error {
	var f raft.Future
	if name == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		f = n.raft.LeadershipTransferToServer(raft.ServerID(name), raft.ServerAddress(addr))
	}
	if err := f.Error(); err != nil {
		return fmt.Errorf("transfer leadership to %q: %w", name, err)
	}
	return nil
}

// AddVoter adds (or re-adds) a voter; leader only.
func (n *Node) AddVoter(name, addr string) error {
	if err := n.raft.AddVoter(raft.ServerID(name), raft.ServerAddress(addr), 0, 5*time.Second).Error(); err != nil {
		return fmt.Errorf("add voter %s: %w", name, err)
	}
	return nil
}

// RemoveServer removes a member from the configuration; leader only.
func (n *Node) RemoveServer(name string) error {
	if err := n.raft.RemoveServer(raft.ServerID(name), 0, 5*time.Second).Error(); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// Voters lists the current voters' names.
func (n *Node) Voters() ([]string, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, string(s.ID))
		}
	}
	return out, nil
}

// LastContact is when this follower last heard from a leader.
func (n *Node) LastContact() time.Time { return n.raft.LastContact() }

// Shutdown stops raft and closes the stores.
func (n *Node) Shutdown() error {
	err := n.raft.Shutdown().Error()
	if cerr := n.trans.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := n.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// tlsStream is raft's StreamLayer over mutual TLS with the cluster CA, on
// every link: it accepts on one listener per address, and a raft address is
// a comma-separated list of a member's endpoints, dialled in order, so
// consensus survives the loss of one link. Any member's certificate is
// accepted (raft addresses carry no names).
type tlsStream struct {
	lns    []net.Listener
	id     *pki.Identity
	adv    multiAddr
	conns  chan net.Conn
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

type multiAddr string

func (m multiAddr) Network() string { return "tcp" }
func (m multiAddr) String() string  { return string(m) }

func newTLSStream(listen []string, id *pki.Identity) (*tlsStream, error) {
	s := &tlsStream{id: id, adv: multiAddr(strings.Join(listen, ",")), conns: make(chan net.Conn), done: make(chan struct{})}
	for _, a := range listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range s.lns {
				l.Close()
			}
			return nil, fmt.Errorf("raft listen %s: %w", a, err)
		}
		s.lns = append(s.lns, ln)
	}
	for _, ln := range s.lns {
		s.wg.Add(1)
		go s.acceptLoop(ln)
	}
	return s, nil
}

func (s *tlsStream) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		select {
		case s.conns <- tls.Server(c, pki.ServerTLS(s.id)):
		case <-s.done:
			c.Close()
			return
		}
	}
}

func (s *tlsStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *tlsStream) Close() error {
	s.closed.Do(func() {
		close(s.done)
		for _, l := range s.lns {
			l.Close()
		}
		s.wg.Wait()
	})
	return nil
}

func (s *tlsStream) Addr() net.Addr { return s.adv }

// Dial tries each endpoint of addr in order, sharing the timeout.
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := pki.ClientTLS(s.id, "")
	cfg.InsecureSkipVerify = true // replaced by the chain check below
	roots := s.id.Roots
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("raft peer sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
	eps := strings.Split(string(addr), ",")
	per := timeout / time.Duration(len(eps))
	var errs []error
	for _, ep := range eps {
		ctx, cancel := context.WithTimeout(context.Background(), per)
		d := tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg}
		c, err := d.DialContext(ctx, "tcp", ep)
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("raft dial %s: %w", addr, errors.Join(errs...))
}

// RecoverSoleVoter rewrites this member's stored raft state so that it is
// the only voter (hashicorp/raft's manual recovery, as with Consul's
// peers.json). Raft must not be running on cfg.Dir. The next StartNode then
// elects this member alone. Used when the other data node is lost and no
// witness can vote: the operator (or the tie-breaker) decides instead.
func RecoverSoleVoter(cfg NodeConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hlog := newHCLog(log.With("component", "raft"), "raft")
	store, err := raftboltdb.NewBoltStore(filepath.Join(cfg.Dir, "raft.db"))
	if err != nil {
		return fmt.Errorf("raft store %s: %w", cfg.Dir, err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		return fmt.Errorf("raft snapshots: %w", err)
	}
	addr := raft.ServerAddress(strings.Join(cfg.Listen, ","))
	_, trans := raft.NewInmemTransport(addr)
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.Logger = hlog
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: addr}}}
	if err := raft.RecoverCluster(rc, NewFSM(nil), store, store, snaps, trans, conf); err != nil {
		return fmt.Errorf("recover raft as the sole voter: %w", err)
	}
	return nil
}
