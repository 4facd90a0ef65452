package hactl_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hapair/hapair/hactl"
	"github.com/hapair/hapair/hactl/hactltest"
	"github.com/hapair/hapair/hactl/hapb"
)

// appUser creates an application role (random password) on the primary and
// returns a DSN that reaches the cluster through the VIP.
func appUser(t testing.TB, l *hactltest.Lab, primary string) string {
	t.Helper()
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	pw := hex.EncodeToString(buf)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := l.Controller(primary).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE app LOGIN PASSWORD '" + pw + "'",
		"CREATE TABLE accounts (name text PRIMARY KEY)",
		"CREATE TABLE registrations (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
		"GRANT ALL ON accounts, registrations TO app",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return fmt.Sprintf("host=%s port=%d user=app password=%s dbname=postgres sslmode=disable connect_timeout=2", l.VIP(), l.PGPort(), pw)
}

// viaVIP runs fn on a fresh connection through the VIP, retrying (bounded)
// while the VIP moves.
func viaVIP(t testing.TB, dsn string, fn func(context.Context, *pgx.Conn) error) {
	t.Helper()
	var err error
	for i := 0; i < 100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var conn *pgx.Conn
		conn, err = pgx.Connect(ctx, dsn)
		if err == nil {
			err = fn(ctx, conn)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("through the VIP: %v", err)
}

func serverAddr(t testing.TB, dsn string) string {
	var addr string
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT host(inet_server_addr())").Scan(&addr)
	})
	return addr
}

// writer registers records through the VIP every 10 ms, retrying on error,
// like the appliance's clients (scenario B). It keeps what was acknowledged
// and the longest time without an acknowledged write.
type writer struct {
	dsn      string
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	acked    []int64
	ackTimes []time.Time
	tryTimes []time.Time // when the try that got each acknowledgement began (its connect included)
	lastAck  time.Time
	gaps     []time.Duration // write unavailability per outage
	errs     map[string]int  // errors seen, by message
}

func startWriter(dsn string) *writer {
	w := &writer{dsn: dsn, stop: make(chan struct{}), done: make(chan struct{}), errs: map[string]int{}}
	go w.run()
	return w
}

func (w *writer) run() {
	defer close(w.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	next := int64(1)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		try := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if conn == nil {
			c, err := pgx.Connect(ctx, w.dsn)
			if err != nil {
				cancel()
				w.noteErr(err)
				continue
			}
			conn = c
		}
		_, err := conn.Exec(ctx, "INSERT INTO registrations (id) VALUES ($1)", next)
		cancel()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			// The previous try committed but its answer was cut with the
			// connection: the registration is there; go on.
			err = nil
		}
		if err != nil {
			w.noteErr(err)
			conn.Close(context.Background())
			conn = nil
			continue
		}
		now := time.Now()
		w.mu.Lock()
		if !w.lastAck.IsZero() && now.Sub(w.lastAck) > 100*time.Millisecond {
			w.gaps = append(w.gaps, now.Sub(w.lastAck))
		}
		w.lastAck = now
		w.acked = append(w.acked, next)
		w.ackTimes = append(w.ackTimes, now)
		w.tryTimes = append(w.tryTimes, try)
		w.mu.Unlock()
		next++
	}
}

func (w *writer) noteErr(err error) {
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	w.mu.Lock()
	w.errs[msg]++
	w.mu.Unlock()
}

func (w *writer) finish() ([]int64, []time.Duration) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked, w.gaps
}

func hasLine(lines []string, sub string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, sub) })
}

func stopOp(c hapb.AgentClient) func(context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
	return func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
		return c.ClusterStop(ctx, &hapb.ClusterStopRequest{})
	}
}

func startOp(c hapb.AgentClient) func(context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
	return func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
		return c.ClusterStart(ctx, &hapb.ClusterStartRequest{})
	}
}

// heartbeatIs reports whether every heartbeat link is connected (up) or
// none is (!up).
func heartbeatIs(up bool) func(*hapb.Snapshot) bool {
	return func(s *hapb.Snapshot) bool {
		if len(s.GetLinks()) == 0 {
			return false
		}
		for _, l := range s.GetLinks() {
			if l.GetConnected() != up {
				return false
			}
		}
		return true
	}
}

// TestScenarioA is the reference scenario A (stop and start each node in
// turn; data follows the active node) with scenario B's client registering
// through the VIP all along.
func TestScenarioA(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{})
	l.Start("primary-node")
	l.Start("secondary-node")
	l.WaitFor("primary-node", "primary-node Active, healthy pair", hactltest.ActiveIs("primary-node"))
	l.WaitFor("secondary-node", "secondary-node sees primary-node Active", hactltest.ActiveIs("primary-node"))
	pc, sc := l.Client("primary-node"), l.Client("secondary-node")
	dsn := appUser(t, l, "primary-node")
	if got := serverAddr(t, dsn); got != l.IP("primary-node") {
		t.Fatalf("the VIP reaches %s, want primary-node (%s)", got, l.IP("primary-node"))
	}
	w := startWriter(dsn)

	// 2. Stop the primary: it hands over; the secondary is Active.
	lines, err := hactltest.RunOp(t, stopOp(pc))
	if err != nil {
		t.Fatalf("ClusterStop on primary-node: %v", err)
	}
	for _, want := range []string{"Stopping cluster services on primary-node", "Handing over to secondary-node", "VIP " + l.VIP() + " released", "has received all WAL", "secondary-node is Active"} {
		if !hasLine(lines, want) {
			t.Errorf("progress %q lacks %q", lines, want)
		}
	}
	s := l.WaitFor("secondary-node", "secondary-node Active after the stop", func(s *hapb.Snapshot) bool {
		return s.GetCluster().GetActiveNode() == "secondary-node" && s.GetLocal().GetHoldsVip() && role(s) == hapb.NodeRole_NODE_ROLE_ACTIVE
	})
	if s.GetCluster().GetHealth() != hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED {
		t.Errorf("health with primary-node stopped: %v, want degraded", s.GetCluster().GetHealth())
	}
	l.WaitFor("primary-node", "primary-node stopped", func(s *hapb.Snapshot) bool {
		return role(s) == hapb.NodeRole_NODE_ROLE_STOPPED && !s.GetLocal().GetHoldsVip() &&
			s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_STOPPED &&
			s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_RUNNING
	})
	if got := serverAddr(t, dsn); got != l.IP("secondary-node") {
		t.Fatalf("after the stop the VIP reaches %s, want secondary-node", got)
	}
	// The stopped node's heartbeat is a stopped cluster service too.
	l.WaitFor("secondary-node", "heartbeat disconnected on every link", heartbeatIs(false))
	l.WaitFor("primary-node", "heartbeat disconnected on the stopped node", heartbeatIs(false))

	// 3. Start the primary: it rejoins as Standby; replication is reversed.
	if _, err := hactltest.RunOp(t, startOp(pc)); err != nil {
		t.Fatalf("ClusterStart on primary-node: %v", err)
	}
	l.WaitFor("secondary-node", "replication secondary-node ==> primary-node", hactltest.Replicates("secondary-node", "primary-node"))
	l.WaitFor("primary-node", "primary-node Standby", func(s *hapb.Snapshot) bool { return role(s) == hapb.NodeRole_NODE_ROLE_STANDBY })
	l.WaitFor("secondary-node", "heartbeat connected again", heartbeatIs(true))

	// 4. A new account TEST through the VIP lands on the secondary.
	var landed string
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "INSERT INTO accounts VALUES ('TEST') RETURNING host(inet_server_addr())").Scan(&landed)
	})
	if landed != l.IP("secondary-node") {
		t.Fatalf("TEST landed on %s, want secondary-node", landed)
	}

	// 5. Stop the secondary: the primary is Active again and has TEST.
	if _, err := hactltest.RunOp(t, stopOp(sc)); err != nil {
		t.Fatalf("ClusterStop on secondary-node: %v", err)
	}
	l.WaitFor("primary-node", "primary-node Active again", func(s *hapb.Snapshot) bool {
		return s.GetCluster().GetActiveNode() == "primary-node" && s.GetLocal().GetHoldsVip()
	})
	var n int
	var at string
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT count(*), host(inet_server_addr()) FROM accounts WHERE name = 'TEST'").Scan(&n, &at)
	})
	if n != 1 || at != l.IP("primary-node") {
		t.Fatalf("through the VIP: %d TEST rows on %s, want 1 on primary-node", n, at)
	}

	// 6. Start the secondary: replication primary ==> secondary again.
	if _, err := hactltest.RunOp(t, startOp(sc)); err != nil {
		t.Fatalf("ClusterStart on secondary-node: %v", err)
	}
	l.WaitFor("primary-node", "replication primary-node ==> secondary-node", hactltest.Replicates("primary-node", "secondary-node"))
	l.WaitFor("secondary-node", "secondary-node Standby", func(s *hapb.Snapshot) bool { return role(s) == hapb.NodeRole_NODE_ROLE_STANDBY })
	l.WaitFor("primary-node", "heartbeat connected again", heartbeatIs(true))

	// B. Every acknowledged registration is on the Active node.
	acked, gaps := w.finish()
	if len(acked) < 100 {
		t.Fatalf("the client got only %d acknowledged registrations; errors: %v", len(acked), w.errs)
	}
	var present []int64
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		rows, err := c.Query(ctx, "SELECT id FROM registrations ORDER BY id")
		if err != nil {
			return err
		}
		present, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	missing := 0
	for _, id := range acked {
		if _, ok := slices.BinarySearch(present, id); !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged registrations are missing on the Active node", missing, len(acked))
	}
	t.Logf("scenario B: %d registrations acknowledged, none lost; write unavailability per move: %v", len(acked), gaps)

	ev, err := pc.Events(context.Background(), &hapb.EventsRequest{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, e := range ev.GetEvents() {
		details = append(details, e.GetDetail())
	}
	for _, want := range []string{"primary-node hands over to secondary-node", "secondary-node is Active (epoch 2), was primary-node", "primary-node is Active (epoch 3), was secondary-node"} {
		if !hasLine(details, want) {
			t.Errorf("events lack %q: %q", want, details)
		}
	}
}

// TestScenarioD kills the Active node's agent and database (a lost host)
// with a witness present: the standby takes over; the old one rejoins as
// Standby when it comes back.
func TestScenarioD(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{Witness: true})
	for _, n := range []string{"witness", "primary-node", "secondary-node"} {
		l.Start(n)
	}
	l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
	l.WaitFor("witness", "the witness sees a leader", func(s *hapb.Snapshot) bool {
		return role(s) == hapb.NodeRole_NODE_ROLE_WITNESS && s.GetLocal().GetLeader() == "primary-node"
	})
	dsn := appUser(t, l, "primary-node")
	var before int
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "INSERT INTO accounts VALUES ('BEFORE')")
		return err
	})
	l.WaitFor("secondary-node", "secondary-node caught up", hactltest.Replicates("primary-node", "secondary-node"))

	start := time.Now()
	l.Crash("primary-node")
	s := l.WaitFor("secondary-node", "secondary-node takes over", func(s *hapb.Snapshot) bool {
		return s.GetCluster().GetActiveNode() == "secondary-node" && s.GetLocal().GetHoldsVip() &&
			s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
	})
	t.Logf("scenario D: takeover seen %v after the crash (epoch %d)", time.Since(start).Round(time.Millisecond), s.GetCluster().GetEpoch())
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT count(*) FROM accounts WHERE name = 'BEFORE'").Scan(&before)
	})
	if before != 1 {
		t.Fatalf("the new Active node has %d BEFORE rows, want 1", before)
	}

	l.Start("primary-node")
	l.WaitFor("primary-node", "primary-node rejoins as Standby", func(s *hapb.Snapshot) bool {
		wr := s.GetLocal().GetDatabase().GetWalReceiver()
		return role(s) == hapb.NodeRole_NODE_ROLE_STANDBY && wr.GetStatus() == "streaming" && !s.GetLocal().GetHoldsVip()
	})
	l.WaitFor("secondary-node", "replication secondary-node ==> primary-node", hactltest.Replicates("secondary-node", "primary-node"))
}

// TestScenarioC tears the cluster down from the Active node, after a
// switchover and a maintenance round trip.
func TestScenarioC(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{})
	l.Start("primary-node")
	l.Start("secondary-node")
	l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
	pc, sc := l.Client("primary-node"), l.Client("secondary-node")
	dsn := appUser(t, l, "primary-node")
	l.WaitFor("primary-node", "pair streaming", hactltest.Replicates("primary-node", "secondary-node"))

	t.Run("maintenance is shown and replicated", func(t *testing.T) {
		if _, err := sc.SetMaintenance(context.Background(), &hapb.SetMaintenanceRequest{Enabled: true}); err != nil {
			t.Fatal(err)
		}
		l.WaitFor("primary-node", "maintenance on", func(s *hapb.Snapshot) bool {
			return s.GetCluster().GetMaintenance() && strings.Contains(s.GetCluster().GetHealthReason(), "maintenance")
		})
		if _, err := pc.SetMaintenance(context.Background(), &hapb.SetMaintenanceRequest{Enabled: false}); err != nil {
			t.Fatal(err)
		}
		l.WaitFor("secondary-node", "maintenance off", func(s *hapb.Snapshot) bool { return !s.GetCluster().GetMaintenance() })
	})

	t.Run("switchover and back", func(t *testing.T) {
		_, err := hactltest.RunOp(t, func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
			return sc.Switchover(ctx, &hapb.SwitchoverRequest{})
		})
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("switchover on the standby: %v, want FailedPrecondition", err)
		}
		for _, from := range []hapb.AgentClient{pc, sc} {
			if _, err := hactltest.RunOp(t, func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
				return from.Switchover(ctx, &hapb.SwitchoverRequest{})
			}); err != nil {
				t.Fatalf("switchover: %v", err)
			}
		}
		l.WaitFor("primary-node", "primary-node Active after two switchovers", hactltest.ActiveIs("primary-node"))
		l.WaitFor("primary-node", "replication primary ==> secondary", hactltest.Replicates("primary-node", "secondary-node"))
	})

	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "INSERT INTO accounts VALUES ('KEEP')")
		return err
	})
	teardown := func(c hapb.AgentClient, confirm bool) ([]string, error) {
		return hactltest.RunOp(t, func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
			return c.Teardown(ctx, &hapb.TeardownRequest{Confirm: confirm})
		})
	}
	if _, err := teardown(pc, false); status.Code(err) != codes.InvalidArgument {
		t.Errorf("teardown without confirmation: %v, want InvalidArgument", err)
	}
	if _, err := teardown(sc, true); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("teardown on the standby: %v, want FailedPrecondition", err)
	}
	lines, err := teardown(pc, true)
	if err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if !hasLine(lines, "The HA cluster has been destroyed. This server is now in stand-alone mode.") {
		t.Errorf("teardown progress %q", lines)
	}
	p := l.WaitFor("primary-node", "primary-node stand-alone", func(s *hapb.Snapshot) bool {
		return role(s) == hapb.NodeRole_NODE_ROLE_STANDALONE && !s.GetLocal().GetHoldsVip() &&
			s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED
	})
	if p.GetLocal().GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY {
		t.Fatalf("stand-alone database %v, want a running primary", p.GetLocal().GetDatabase().GetRole())
	}
	// Its data, on its own address (the VIP is gone).
	ownDSN := strings.Replace(dsn, "host="+l.VIP(), "host="+l.IP("primary-node"), 1)
	var n int
	viaVIP(t, ownDSN, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT count(*) FROM accounts WHERE name = 'KEEP'").Scan(&n)
	})
	if n != 1 {
		t.Fatalf("stand-alone node has %d KEEP rows, want 1", n)
	}
	l.WaitFor("secondary-node", "secondary-node deactivated", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetDeactivated() && s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_STOPPED
	})
	_, err = hactltest.RunOp(t, startOp(sc))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "deployment") {
		t.Fatalf("ClusterStart on the deactivated node: %v, want a refusal naming a new deployment", err)
	}
	_, err = hactltest.RunOp(t, stopOp(pc))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "HA is not enabled") {
		t.Fatalf("ClusterStop on the stand-alone node: %v, want HA is not enabled", err)
	}
}

// TestIsolatedActiveDemotesItself freezes every other member (SIGSTOP): the
// Active node, cut off from the majority, must release the VIP and stop
// writing by itself. When the others come back, the cluster has an Active
// node again and no write was lost.
func TestIsolatedActiveDemotesItself(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{Witness: true})
	for _, n := range []string{"witness", "primary-node", "secondary-node"} {
		l.Start(n)
	}
	l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
	dsn := appUser(t, l, "primary-node")
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "INSERT INTO accounts VALUES ('BEFORE')")
		return err
	})
	l.WaitFor("primary-node", "replication", hactltest.Replicates("primary-node", "secondary-node"))
	resume := l.Freeze("witness", "secondary-node")
	l.WaitFor("primary-node", "the isolated Active node demotes itself", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() != hapb.NodeRole_NODE_ROLE_ACTIVE && !s.GetLocal().GetHoldsVip() &&
			s.GetLocal().GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
	})
	resume()
	var active string
	l.WaitFor("secondary-node", "an Active node again", func(s *hapb.Snapshot) bool {
		active = s.GetCluster().GetActiveNode()
		return s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_HEALTHY && s.GetCluster().GetVip().GetHolder() == active
	})
	var n int
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT count(*) FROM accounts WHERE name = 'BEFORE'").Scan(&n)
	})
	if n != 1 {
		t.Fatalf("after the isolation the Active node (%s) has %d BEFORE rows, want 1", active, n)
	}
}

// TestStandbyLostTwoNodes kills the standby's agent and database in a pair
// without a witness: the Active node loses its raft quorum but must keep
// serving (nobody else can be elected without it); the standby rejoins when
// it comes back.
func TestStandbyLostTwoNodes(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{})
	l.Start("primary-node")
	l.Start("secondary-node")
	l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
	dsn := appUser(t, l, "primary-node")
	l.WaitFor("primary-node", "replication", hactltest.Replicates("primary-node", "secondary-node"))
	l.Crash("secondary-node")
	l.WaitFor("primary-node", "primary-node serving alone, degraded", func(s *hapb.Snapshot) bool {
		return s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_DEGRADED && s.GetLocal().GetRaftState() != "Leader"
	})
	// Still Active, still holding the VIP, still writable, a while later.
	time.Sleep(2 * time.Second)
	s := l.WaitFor("primary-node", "primary-node still Active", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_ACTIVE && s.GetLocal().GetHoldsVip()
	})
	if s.GetLocal().GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY {
		t.Fatalf("database %v, want primary", s.GetLocal().GetDatabase().GetRole())
	}
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "INSERT INTO accounts VALUES ('ALONE')")
		return err
	})
	l.Start("secondary-node")
	l.WaitFor("primary-node", "the pair healthy again", func(s *hapb.Snapshot) bool {
		return hactltest.ActiveIs("primary-node")(s) && hactltest.Replicates("primary-node", "secondary-node")(s)
	})
}

// TestForcedTakeoverTwoNodes: in a pair without a witness the Active node's
// host is lost; the operator takes over on the standby (refused while the
// Active node still answers heartbeats). When the old node comes back it
// sees the later epoch in the heartbeats and rejoins as Standby.
func TestForcedTakeoverTwoNodes(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{})
	l.Start("primary-node")
	l.Start("secondary-node")
	l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
	dsn := appUser(t, l, "primary-node")
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "INSERT INTO accounts VALUES ('BEFORE')")
		return err
	})
	l.WaitFor("secondary-node", "replication", hactltest.Replicates("primary-node", "secondary-node"))
	sc := l.Client("secondary-node")
	force := func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
		return sc.Switchover(ctx, &hapb.SwitchoverRequest{Force: true})
	}
	if _, err := hactltest.RunOp(t, force); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "answers heartbeats") {
		t.Fatalf("forced takeover while the Active node is alive: %v, want a refusal", err)
	}
	l.Crash("primary-node")
	l.WaitFor("secondary-node", "heartbeats lost on every link", func(s *hapb.Snapshot) bool {
		for _, lk := range s.GetLinks() {
			if lk.GetConnected() {
				return false
			}
		}
		return len(s.GetLinks()) > 0
	})
	// No automatic promotion without a third vote.
	if s := l.WaitFor("secondary-node", "still standby", func(*hapb.Snapshot) bool { return true }); s.GetLocal().GetDatabase().GetRole() != hapb.DatabaseRole_DATABASE_ROLE_STANDBY {
		t.Fatalf("the standby promoted by itself: %v", s.GetLocal().GetDatabase().GetRole())
	}
	lines, err := hactltest.RunOp(t, force)
	if err != nil {
		t.Fatalf("forced takeover: %v", err)
	}
	if !hasLine(lines, "secondary-node is Active") {
		t.Errorf("progress %q", lines)
	}
	l.WaitFor("secondary-node", "secondary-node Active with the VIP", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_ACTIVE && s.GetLocal().GetHoldsVip()
	})
	var n int
	viaVIP(t, dsn, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT count(*) FROM accounts WHERE name = 'BEFORE'").Scan(&n)
	})
	if n != 1 {
		t.Fatalf("%d BEFORE rows on the new Active node, want 1", n)
	}
	l.Start("primary-node")
	l.WaitFor("primary-node", "the old node rejoins as Standby", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_STANDBY && s.GetLocal().GetDatabase().GetWalReceiver().GetStatus() == "streaming" && !s.GetLocal().GetHoldsVip()
	})
	l.WaitFor("secondary-node", "replication secondary ==> primary", hactltest.Replicates("secondary-node", "primary-node"))
}

// TestSyncReplicationDegrades: in sync mode the Active node names its peer
// in synchronous_standby_names; when the standby is lost, writes continue
// after sync_degrade_wait (replication degraded to async, with an event),
// and sync comes back with the standby.
func TestSyncReplicationDegrades(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{Witness: true})
	for _, n := range []string{"primary-node", "secondary-node", "witness"} {
		c := l.Config(n)
		c.ReplicationMode = "sync"
		c.Timers.SyncDegradeWait = hactl.Duration(2 * time.Second)
		l.SetConfig(n, c)
		l.Start(n)
	}
	syncTo := func(from, to string) func(*hapb.Snapshot) bool {
		return func(s *hapb.Snapshot) bool {
			n := s.GetLocal()
			if n.GetName() != from || n.GetDatabase().GetSynchronousStandbyNames() != `"`+to+`"` {
				return false
			}
			for _, r := range n.GetDatabase().GetReplicas() {
				if r.GetApplicationName() == to && r.GetSyncState() == "sync" {
					return true
				}
			}
			return false
		}
	}
	l.WaitFor("primary-node", "synchronous replication to secondary-node", syncTo("primary-node", "secondary-node"))
	dsn := appUser(t, l, "primary-node")
	l.Crash("secondary-node")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "INSERT INTO accounts VALUES ('WHILE-DEGRADED')")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write while the standby is lost: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the write never completed: replication did not degrade to async")
	}
	l.WaitFor("primary-node", "degraded to async", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetDatabase().GetSynchronousStandbyNames() == "" && hasEvent(s.GetRecentEvents(), "degraded to async")
	})
	l.Start("secondary-node")
	l.WaitFor("primary-node", "synchronous replication restored", syncTo("primary-node", "secondary-node"))
}

// TestTeardownWithThePeerAway tears a pair down while the standby cannot be
// reached: the Active node goes stand-alone at once; the standby, when it
// is back, learns it from the other's status and deactivates.
func TestTeardownWithThePeerAway(t *testing.T) {
	l := hactltest.New(t, hactltest.Options{})
	l.Start("primary-node")
	l.Start("secondary-node")
	l.WaitFor("primary-node", "primary-node Active", hactltest.ActiveIs("primary-node"))
	resume := l.Freeze("secondary-node")
	l.WaitFor("primary-node", "primary-node without its peer", func(s *hapb.Snapshot) bool {
		return !s.GetPeer().GetReachable() && s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_ACTIVE
	})
	lines, err := hactltest.RunOp(t, func(ctx context.Context) (grpc.ServerStreamingClient[hapb.Progress], error) {
		return l.Client("primary-node").Teardown(ctx, &hapb.TeardownRequest{Confirm: true})
	})
	if err != nil {
		t.Fatalf("teardown with the peer away: %v", err)
	}
	if !hasLine(lines, "they will deactivate when they learn") || !hasLine(lines, "stand-alone mode") {
		t.Errorf("teardown progress %q", lines)
	}
	l.WaitFor("primary-node", "primary-node stand-alone", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetRole() == hapb.NodeRole_NODE_ROLE_STANDALONE &&
			s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_PRIMARY
	})
	resume()
	l.WaitFor("secondary-node", "secondary-node deactivated when it learns", func(s *hapb.Snapshot) bool {
		return s.GetLocal().GetDeactivated() && s.GetLocal().GetDatabase().GetRole() == hapb.DatabaseRole_DATABASE_ROLE_STOPPED &&
			s.GetCluster().GetHealth() == hapb.ClusterHealth_CLUSTER_HEALTH_NOT_ENABLED
	})
}

func role(s *hapb.Snapshot) hapb.NodeRole { return s.GetLocal().GetRole() }
