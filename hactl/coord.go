package hactl

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hapair/hapair/hactl/cluster"
	"github.com/hapair/hapair/hactl/hapb"
	"github.com/hapair/hapair/hactl/heartbeat"
	"github.com/hapair/hapair/hactl/pg"
)

// startRaft starts this node's consensus member; the node configured to
// bootstrap the primary also makes the initial configuration.
func (a *Agent) startRaft() error {
	nc := a.nodeConfig()
	n, err := cluster.StartNode(nc)
	if err != nil {
		return err
	}
	if a.cfg.Bootstrap == BootstrapPrimary {
		var servers []cluster.Server
		for _, m := range a.cfg.Members {
			servers = append(servers, cluster.Server{Name: m.Name, Addr: m.RaftAddr()})
		}
		if err := n.Bootstrap(servers); err != nil {
			n.Shutdown()
			return err
		}
	}
	a.nodeMu.Lock()
	a.node = n
	a.nodeMu.Unlock()
	return nil
}

func (a *Agent) nodeConfig() cluster.NodeConfig {
	self := a.cfg.Self()
	var listen []string
	for _, addr := range self.Addrs() {
		listen = append(listen, net.JoinHostPort(addr, strconv.Itoa(self.RaftPort)))
	}
	return cluster.NodeConfig{
		Name:               a.cfg.NodeName,
		Listen:             listen,
		Dir:                a.cfg.RaftDir(),
		Identity:           a.id,
		HeartbeatTimeout:   time.Duration(a.cfg.Timers.RaftHeartbeat),
		ElectionTimeout:    time.Duration(a.cfg.Timers.RaftElection),
		LeaderLeaseTimeout: time.Duration(a.cfg.Timers.LeaderLease),
		CommitTimeout:      20 * time.Millisecond,
		Logger:             a.log,
		OnApply:            func() { a.kickReconcile(); a.kickSampler() },
	}
}

// initialState is the cluster's first state, proposed by the bootstrapping
// node once it leads.
func (a *Agent) initialState() (*cluster.State, error) {
	id := make([]byte, 8)
	key := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	s := &cluster.State{
		ID:           hex.EncodeToString(id),
		Name:         a.cfg.ClusterName,
		Settings:     cluster.Settings{ReplicationMode: a.cfg.ReplicationMode, MaxLagBytes: a.cfg.MaxLagBytes},
		HeartbeatKey: key,
	}
	if s.Name == "" {
		s.Name = "hapair"
	}
	if a.cfg.VIP != nil {
		s.VIP = a.cfg.VIP.Address
	}
	for _, m := range a.cfg.Members {
		s.Members = append(s.Members, cluster.Member{
			Name: m.Name, Kind: m.Kind, PublicAddr: m.PublicAddr, HeartbeatAddr: m.HeartbeatAddr,
			AgentAddr: m.AgentAddr(), RaftAddr: m.RaftAddr(), PGAddr: m.PGAddr(),
			AgentPort: m.AgentPort, RaftPort: m.RaftPort, HeartbeatPort: m.HeartbeatPort, PGPort: m.PGPort,
		})
	}
	return s, nil
}

// leaderLoop follows leadership: on winning it establishes (promote, take
// the VIP), retrying while it leads; on losing it revokes (release the VIP,
// stop writing). raft's notifications come on the node's own channel.
func (a *Agent) leaderLoop(ctx context.Context) {
	retry := time.NewTimer(time.Second)
	defer retry.Stop()
	// busy counts establish attempts in a row that found the operation lock
	// taken: right after winning, a reconcile pass may hold it a moment
	// longer (its question to the lost Active node was just cancelled), so
	// the first retries come every 20 ms instead of every second.
	busy := 0
	for {
		// The node may be replaced (forced takeover) or gone (teardown).
		n := a.raftNode()
		var leaderCh <-chan bool
		if n != nil {
			leaderCh = n.LeaderCh()
		}
		select {
		case <-ctx.Done():
			return
		case leader := <-leaderCh:
			busy = 0
			if leader {
				a.leaderSince.Store(time.Now().UnixNano())
				a.log.Info("won leadership")
				a.endAsk()
				if a.establish(ctx) {
					busy++
				}
			} else {
				a.log.Info("lost leadership")
				a.stepDown(ctx, "lost leadership")
			}
		case <-retry.C:
			switch {
			case n == nil:
			case n.IsLeader() && !a.established.Load():
				if a.establish(ctx) {
					busy++
				} else {
					busy = 0
				}
			case !n.IsLeader() && a.established.Load():
				a.stepDown(ctx, "no longer leader")
			}
		}
		next := time.Second
		if busy > 0 && busy <= 50 {
			next = 20 * time.Millisecond
		}
		retry.Reset(next)
	}
}

// establish makes the leader Active, Consul-style: barrier, decide, then the
// side effects; if they fail, revoke and hand leadership on.
// It reports busy when the operation lock was taken, so nothing was done.
func (a *Agent) establish(ctx context.Context) (busy bool) {
	n := a.raftNode()
	if n == nil || a.established.Load() || a.planned.Load() {
		return false
	}
	if !a.opMu.TryLock() {
		return true // an operation is running; the leader loop comes back
	}
	defer a.opMu.Unlock()
	if err := n.Barrier(5 * time.Second); err != nil {
		a.log.Warn("barrier failed", "err", err)
		return false
	}
	st := n.State()
	if st.ID == "" {
		if a.cfg.Bootstrap != BootstrapPrimary {
			a.handOn("the cluster is not formed yet and this node does not form it")
			return false
		}
		init, err := a.initialState()
		if err == nil {
			err = n.Apply(cluster.Command{Type: cluster.CmdInit, Node: a.cfg.NodeName, Time: time.Now(), Init: init}, 5*time.Second)
		}
		if err != nil {
			a.log.Warn("form cluster", "err", err)
			return false
		}
		st = n.State()
	}
	if st.TornDown {
		return false
	}
	me, _ := st.Member(a.cfg.NodeName)
	switch {
	case a.cfg.IsWitness():
		a.handOn("the witness never holds the Active role")
		return false
	case me.Stopped:
		a.handOn("cluster services are stopped on this node")
		return false
	}
	db, err := a.pg.Status(ctx)
	if err != nil {
		a.log.Warn("establish: database status", "err", err)
		return false
	}
	first := st.Active == "" && st.Epoch == 0 && a.cfg.Bootstrap == BootstrapPrimary
	current := st.Active == a.cfg.NodeName && (st.Handover == nil || st.Handover.Epoch != st.Epoch)
	if db.Role == pg.RoleStopped && (current || first) {
		// This node's database is the primary of the current epoch (nobody
		// promoted since), or the first one: bring it back (a reboot).
		if err := a.pg.Start(ctx); err != nil {
			a.fail("start", err)
			return false
		}
		if db, err = a.pg.Status(ctx); err != nil {
			return false
		}
	}
	switch {
	case db.Role == pg.RolePrimary && st.Active == a.cfg.NodeName:
		// Already Active (an agent restart, or leadership came back).
	case db.Role == pg.RolePrimary && st.Active == "" && st.Epoch == 0:
		// The first primary of a new cluster.
		if err := a.apply(ctx, cluster.Command{Type: cluster.CmdPromoted, Node: a.cfg.NodeName, Epoch: 1}); err != nil {
			a.log.Warn("claim epoch 1", "err", err)
			return false
		}
	case db.Role == pg.RoleStandby:
		if st.Maintenance && (st.Handover == nil || st.Handover.To != a.cfg.NodeName) {
			a.events.add(a.cfg.NodeName, "maintenance", "leader in maintenance mode: not promoting automatically")
			return false
		}
		if err := a.mayPromote(ctx, st, db); err != nil {
			a.apply(ctx, cluster.Command{Type: cluster.CmdEvent, Kind: "promotion", Detail: a.cfg.NodeName + " will not promote: " + err.Error()})
			a.handOn(err.Error())
			return false
		}
		if err := a.apply(ctx, cluster.Command{Type: cluster.CmdPromoted, Node: a.cfg.NodeName, Epoch: st.Epoch + 1}); err != nil {
			a.log.Warn("claim epoch", "epoch", st.Epoch+1, "err", err)
			return false
		}
		if err := a.pg.Promote(ctx); err != nil {
			a.fail("promote", err)
			a.revoke(ctx, "promotion failed")
			a.handOn("promotion failed")
			return false
		}
	default:
		a.handOn(fmt.Sprintf("this node's database is %v and cannot become the primary", db.Role))
		return false
	}
	if err := a.takeVIP(ctx); err != nil {
		a.fail("take vip", err)
		a.revoke(ctx, "could not take the VIP")
		a.handOn("could not take the VIP")
		return false
	}
	a.ensurePeerSlot(ctx, n.State())
	a.established.Store(true)
	a.holding.Store(false)
	// The timeline is settled (a CHECKPOINT) only when a peer asks for a
	// replication source before rewinding: not here, where it would slow
	// the first writes on the new primary.
	a.log.Info("active", "epoch", n.State().Epoch)
	a.kickSampler()
	return false
}

// mayPromote decides (decidePromotion) whether this standby may become the
// primary now, waiting (bounded) where the decision says to wait.
func (a *Agent) mayPromote(ctx context.Context, st *cluster.State, db pg.Status) error {
	deadline := time.Now().Add(time.Duration(a.cfg.Timers.FenceDelay) + 5*time.Second)
	reason := "no decision"
	for i := 0; i < 500 && time.Now().Before(deadline); i++ {
		a.mu.Lock()
		in := promotionInput{
			Self: a.cfg.NodeName, State: st, Received: uint64(db.ReceiveLSN),
			SinceLeader: time.Since(time.Unix(0, a.leaderSince.Load())), FenceDelay: time.Duration(a.cfg.Timers.FenceDelay),
			Policy: a.cfg.FailoverPolicy, PeerRole: a.peerBeatRole, PeerBeatAge: time.Since(a.peerBeatAt),
			HeartbeatDead: time.Duration(a.cfg.Timers.HeartbeatDead),
			Announced:     a.primaryLSN, AnnouncedSync: a.primarySync, AnnouncedKnown: !a.primaryAt.IsZero(),
		}
		a.mu.Unlock()
		if db.ReplayLSN > db.ReceiveLSN {
			in.Received = uint64(db.ReplayLSN)
		}
		d := decidePromotion(in)
		reason = d.Reason
		wait := d.Wait
		switch {
		case d.Promote:
			return nil
		case d.NeedLSN > 0:
			wait = 50 * time.Millisecond
		case wait == 0:
			return errors.New(d.Reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		var err error
		if db, err = a.pg.Status(ctx); err != nil {
			return err
		}
	}
	return fmt.Errorf("not promoting: %s", reason)
}

// handOn gives leadership to a data node that can take it: a voter whose
// cluster services run and whose agent answers with a running database.
func (a *Agent) handOn(why string) {
	n := a.raftNode()
	if n == nil || !n.IsLeader() {
		return
	}
	st := n.State()
	for _, m := range st.Members {
		if m.Name == a.cfg.NodeName || m.Kind != cluster.KindData || m.Stopped || !a.isVoter(m.Name) {
			continue
		}
		pc, ok := a.clients[m.Name]
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		ns, err := pc.GetNodeStatus(ctx, &hapb.NodeStatusRequest{})
		cancel()
		role := ns.GetDatabase().GetRole()
		if err != nil || (role != hapb.DatabaseRole_DATABASE_ROLE_STANDBY && role != hapb.DatabaseRole_DATABASE_ROLE_PRIMARY) {
			continue
		}
		a.log.Info("handing leadership on", "to", m.Name, "why", why)
		if err := n.TransferLeadership(m.Name, m.RaftAddr); err != nil {
			a.log.Warn("hand leadership on", "to", m.Name, "err", err)
		}
		return
	}
	a.log.Info("no data node can take leadership now", "why", why)
}

func (a *Agent) isVoter(name string) bool {
	n := a.raftNode()
	if n == nil {
		return false
	}
	vs, err := n.Voters()
	if err != nil {
		return false
	}
	for _, v := range vs {
		if v == name {
			return true
		}
	}
	return false
}

// stepDown handles the loss of leadership by the Active node. With three
// voters (a witness), the majority may elect another node: revoke at once
// (release the VIP, stop writing). With two voters nobody can be elected
// without this node's vote, and a standby never promotes while this node's
// heartbeats say it runs a primary: keep serving, without quorum, until the
// peer is back (the reconciler keeps the VIP).
func (a *Agent) stepDown(ctx context.Context, why string) {
	if a.planned.Load() || a.othersMayElect() {
		a.revoke(ctx, why)
		return
	}
	if a.established.Swap(false) {
		a.holding.Store(true)
		a.events.add(a.cfg.NodeName, "quorum", "lost quorum ("+why+"): two voters, so nobody else can be elected; staying Active without quorum")
	}
	a.kickReconcile()
}

// othersMayElect reports whether a majority without this node exists: three
// or more voters.
func (a *Agent) othersMayElect() bool {
	n := a.raftNode()
	if n == nil {
		return false
	}
	vs, err := n.Voters()
	return err != nil || len(vs) >= 3
}

// revoke: this node is not (or no longer) Active: release the VIP and, if
// its database is a primary that may compete with another one, stop it
// writing at once. (Before the first Active node is recorded, nobody else
// can be primary: a standby never promotes without one.)
func (a *Agent) revoke(ctx context.Context, why string) {
	was := a.established.Swap(false)
	a.holding.Store(false)
	if a.pg == nil {
		return
	}
	if err := a.releaseVIP(ctx); err != nil {
		a.fail("release vip", err)
	}
	if a.planned.Load() {
		return // the planned operation stops the database itself
	}
	recorded := was
	if n := a.raftNode(); n != nil && n.State().Active != "" {
		recorded = true
	}
	st, err := a.pg.Status(ctx)
	if err == nil && st.Role == pg.RolePrimary && recorded {
		if err := a.pg.Fence(ctx); err != nil {
			a.fail("fence", err)
			return
		}
		a.events.add(a.cfg.NodeName, "fence", "database stopped: "+why)
	} else if was {
		a.events.add(a.cfg.NodeName, "fence", "no longer Active: "+why)
	}
	a.kickSampler()
}

func (a *Agent) takeVIP(ctx context.Context) error {
	if a.vip == nil {
		return nil
	}
	held, err := a.vip.Held(ctx)
	if err == nil && held {
		return nil
	}
	if err := a.vip.Acquire(ctx); err != nil {
		return err
	}
	a.events.add(a.cfg.NodeName, "vip", "VIP "+a.vip.Address()+" acquired by "+a.cfg.NodeName)
	return nil
}

func (a *Agent) releaseVIP(ctx context.Context) error {
	if a.vip == nil {
		return nil
	}
	held, err := a.vip.Held(ctx)
	if err := a.vip.Release(ctx); err != nil {
		return err
	}
	if err == nil && held {
		a.events.add(a.cfg.NodeName, "vip", "VIP "+a.vip.Address()+" released by "+a.cfg.NodeName)
	}
	return nil
}

func (a *Agent) ensurePeerSlot(ctx context.Context, st *cluster.State) {
	if peer, ok := st.Peer(a.cfg.NodeName); ok {
		if err := a.pg.EnsureSlot(ctx, pg.SlotName(peer.Name)); err != nil {
			a.log.Warn("slot for peer", "peer", peer.Name, "err", err)
		}
	}
}

// apply commits a command: directly when this node leads, else through the
// leader's agent.
func (a *Agent) apply(ctx context.Context, c cluster.Command) error {
	if c.Node == "" {
		c.Node = a.cfg.NodeName
	}
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	n := a.raftNode()
	if n == nil {
		return errors.New("this node is not in a cluster")
	}
	if n.IsLeader() {
		return n.Apply(c, 5*time.Second)
	}
	b, err := c.Encode()
	if err != nil {
		return err
	}
	return a.viaLeader(ctx, func(ctx context.Context, pc hapb.PeerClient) error {
		_, err := pc.Apply(ctx, &hapb.ApplyRequest{Command: b})
		return err
	})
}

// viaLeader calls the leader's agent, waiting (bounded) for a leader. A node
// outside the voters (stopped, or just rejoining) may not know the leader:
// then every other member is tried, and only the leader accepts.
func (a *Agent) viaLeader(ctx context.Context, call func(context.Context, hapb.PeerClient) error) error {
	var lastErr error
	for i := 0; i < 50; i++ {
		var order []string
		if n := a.raftNode(); n != nil {
			if leader, _ := n.Leader(); leader != "" && leader != a.cfg.NodeName {
				order = append(order, leader)
			}
		}
		for _, m := range a.cfg.Members {
			if m.Name != a.cfg.NodeName && (len(order) == 0 || m.Name != order[0]) {
				order = append(order, m.Name)
			}
		}
		for _, name := range order {
			pc, ok := a.clients[name]
			if !ok {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := call(cctx, pc)
			cancel()
			if err == nil {
				return nil
			}
			lastErr = fmt.Errorf("%s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("through the leader: %w", lastErr)
}

// askContext returns a context for a reconcile pass's question to the
// Active node, which endAsk ends: a question to a lost Active node waits
// for its timeout (seconds) while holding the operation lock, which a node
// that just won leadership needs to promote.
func (a *Agent) askContext(ctx context.Context) (context.Context, func()) {
	actx, cancel := context.WithCancel(ctx)
	a.mu.Lock()
	a.askCancel = cancel
	a.mu.Unlock()
	return actx, func() {
		a.mu.Lock()
		a.askCancel = nil
		a.mu.Unlock()
		cancel()
	}
}

// endAsk ends the reconcile pass's question to the Active node, if one is
// being asked (leadership was won: the answer no longer matters).
func (a *Agent) endAsk() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.askCancel != nil {
		a.askCancel()
	}
}

// reconcileLoop keeps this node's database and VIP where the cluster
// decided, level-triggered: on every applied entry and every second.
func (a *Agent) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(time.Duration(a.cfg.Timers.Reconcile))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.recon:
		}
		a.reconcile(ctx)
	}
}

func (a *Agent) reconcile(ctx context.Context) {
	n := a.raftNode()
	if n == nil || a.marker.standalone() || a.planned.Load() {
		return
	}
	if a.syncMembership(n.State()) || a.pg == nil {
		return
	}
	if !a.opMu.TryLock() {
		return
	}
	defer a.opMu.Unlock()
	st := n.State()
	if a.replaced(ctx, st) {
		return
	}
	if st.ID == "" {
		return
	}
	if st.TornDown && st.TornDownBy != a.cfg.NodeName {
		a.deactivate(ctx, st.ID, st.TornDownBy)
		return
	}
	me, ok := st.Member(a.cfg.NodeName)
	if !ok || st.TornDown {
		return
	}
	db, err := a.pg.Status(ctx)
	if err != nil {
		return
	}
	if me.Stopped {
		a.revoke(ctx, "cluster services stopped on this node")
		if db.Role == pg.RolePrimary || db.Role == pg.RoleStandby {
			if err := a.pg.Stop(ctx); err != nil {
				a.fail("stop", err)
			}
		}
		return
	}
	if n.IsLeader() {
		if a.established.Load() {
			if err := a.takeVIP(ctx); err != nil {
				a.fail("take vip", err)
			}
			a.ensurePeerSlot(ctx, st)
			a.manageSync(ctx, st)
		}
		return
	}
	// The recorded Active node without quorum in a two-voter cluster keeps
	// its VIP and primary (see stepDown); any other follower never holds
	// the VIP nor runs a primary.
	if st.Active == a.cfg.NodeName && db.Role == pg.RolePrimary && !a.othersMayElect() {
		a.holding.Store(true)
		if err := a.takeVIP(ctx); err != nil {
			a.fail("take vip", err)
		}
		return
	}
	a.holding.Store(false)
	if err := a.releaseVIP(ctx); err != nil {
		a.fail("release vip", err)
	}
	if db.Role == pg.RolePrimary && st.Active != "" {
		a.revoke(ctx, "a follower must not run a primary")
		return
	}
	if st.Active == "" || st.Active == a.cfg.NodeName {
		return
	}
	active, ok := st.Member(st.Active)
	if !ok || active.Stopped {
		return
	}
	if h := st.Handover; h != nil && h.Epoch == st.Epoch && h.To == a.cfg.NodeName {
		return // about to be promoted: nothing to follow
	}
	err = a.followActive(ctx, active.Name, db)
	a.mu.Lock()
	repeated := err != nil && a.lastFollowErr == err.Error()
	a.lastFollowErr = ""
	if err != nil {
		a.lastFollowErr = err.Error()
	}
	a.mu.Unlock()
	switch {
	case err != nil && !repeated:
		a.fail("follow "+active.Name, err)
	case err != nil:
		a.log.Debug("follow failed again", "active", active.Name, "err", err)
	}
}

// syncMembership: the members of the replicated state are the truth; a
// member this agent's configuration lacks (a witness paired after this node,
// at deployment) is added to its deployed membership and the agent restarts
// to talk to it. It reports whether a restart was requested.
func (a *Agent) syncMembership(st *cluster.State) bool {
	if st.ID == "" || st.TornDown {
		return false
	}
	members := append([]MemberConfig(nil), a.cfg.Members...)
	added := false
	for _, m := range st.Members {
		if _, ok := a.cfg.Member(m.Name); ok || m.AgentPort == 0 {
			continue
		}
		members = append(members, MemberConfig{Name: m.Name, Kind: m.Kind, PublicAddr: m.PublicAddr, HeartbeatAddr: m.HeartbeatAddr,
			AgentPort: m.AgentPort, RaftPort: m.RaftPort, HeartbeatPort: m.HeartbeatPort, PGPort: m.PGPort})
		added = true
	}
	if !added {
		return false
	}
	if err := writeOverlay(a.cfg.StateDir, membershipOverlay{ClusterName: st.Name, Members: members,
		VIP: a.cfg.VIP, ReplicationMode: a.cfg.ReplicationMode, Bootstrap: a.cfg.Bootstrap}); err != nil {
		a.fail("membership", err)
		return false
	}
	a.events.add(a.cfg.NodeName, "cluster", "learned the cluster's full membership; restarting the agent to reach every member")
	a.requestRestart()
	return true
}

// replaced handles a node that the other one replaced while it was away
// (a forced takeover): the peer's heartbeats announce a primary in a later
// epoch than this node knows. It stops writing at once and asks the peer to
// take it back as a voter; the reconciler then rewinds it as a standby.
func (a *Agent) replaced(ctx context.Context, st *cluster.State) bool {
	peer, ok := a.cfg.PeerMember()
	if !ok {
		return false
	}
	a.mu.Lock()
	role, at, epoch := a.peerBeatRole, a.peerBeatAt, a.peerBeatEpoch
	a.mu.Unlock()
	if role != "primary" || epoch <= st.Epoch || time.Since(at) > time.Duration(a.cfg.Timers.HeartbeatDead) {
		return false
	}
	if n := a.raftNode(); n == nil || n.IsLeader() {
		return false
	}
	a.revoke(ctx, peer.Name+" took over in epoch "+strconv.FormatUint(epoch, 10))
	if pc, ok := a.clients[peer.Name]; ok {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := pc.Join(cctx, &hapb.JoinRequest{Node: a.cfg.NodeName, RaftAddr: a.cfg.Self().RaftAddr()})
		cancel()
		if err != nil {
			a.log.Info("rejoin the cluster of the node that took over", "peer", peer.Name, "err", err)
		} else {
			a.events.add(a.cfg.NodeName, "cluster", "rejoined the cluster of "+peer.Name+" after its takeover")
		}
	}
	return true
}

// followActive makes this node's database a standby of the Active node:
// clone when there is none, rewind a stopped one (a former primary, or a
// standby of an older epoch; pg_rewind does nothing when nothing diverged),
// re-point a standby that streams from elsewhere. A rewind that fails is
// followed by a fresh clone; the old data directory is kept aside.
func (a *Agent) followActive(ctx context.Context, active string, db pg.Status) error {
	switch db.Role {
	case pg.RoleUninitialized:
		return a.cloneFrom(ctx, active, 30*time.Second)
	case pg.RoleStandby:
		streaming := db.WalReceiver != nil && db.WalReceiver.Status == "streaming"
		a.mu.Lock()
		if streaming {
			a.notStreamingSince = time.Time{}
		} else if a.notStreamingSince.IsZero() {
			a.notStreamingSince = time.Now()
		}
		stuck := !a.notStreamingSince.IsZero() && time.Since(a.notStreamingSince) > stuckStandby
		a.mu.Unlock()
		actx, done := a.askContext(ctx)
		src, err := a.replicationSource(actx, active)
		done()
		if err != nil && actx.Err() != nil && ctx.Err() == nil {
			return nil // this node won leadership meanwhile: nothing to follow
		}
		if err != nil {
			return err
		}
		want := a.upstreamOf(src)
		if stuck {
			// It cannot follow (e.g. it holds WAL past the new timeline's
			// fork point): rewind it.
			a.events.add(a.cfg.NodeName, "database", "standby not streaming from "+active+" for "+stuckStandby.String()+": rewinding it")
			a.mu.Lock()
			a.notStreamingSince = time.Time{}
			a.mu.Unlock()
			return a.rewindOrReclone(ctx, active, src)
		}
		if cur, ok := a.pg.Upstream(); ok && cur == want {
			return nil
		}
		return a.pg.Follow(ctx, want)
	case pg.RoleStopped:
		src, err := a.replicationSource(ctx, active)
		if err != nil {
			return err
		}
		return a.rewindOrReclone(ctx, active, src)
	}
	return nil
}

// stuckStandby is how long a standby may fail to stream before it is rewound.
const stuckStandby = 20 * time.Second

// rewindOrReclone makes a stopped (or stuck) database a standby of active:
// pg_rewind, and if that fails a fresh clone with the old data kept aside.
func (a *Agent) rewindOrReclone(ctx context.Context, active string, src *hapb.ReplicationSource) error {
	up := a.upstreamOf(src)
	rerr := a.pg.Rewind(ctx, up)
	if rerr == nil {
		a.events.add(a.cfg.NodeName, "database", "database rewound if needed and streaming from "+active)
		return nil
	}
	a.fail("rewind", rerr)
	dst, err := a.pg.MoveAside(ctx)
	if err != nil {
		return err
	}
	a.events.add(a.cfg.NodeName, "database", "rewind failed; old data kept in "+dst+"; cloning afresh from "+active)
	return a.pg.Clone(ctx, up, pg.Credential{User: src.GetUser(), Password: src.GetPassword()})
}

// deactivate: the other node tore the cluster down. Stop the database,
// release the VIP, forget the cluster, refuse to rejoin it.
func (a *Agent) deactivate(ctx context.Context, clusterID, by string) {
	a.revoke(ctx, "the cluster was torn down by "+by)
	if a.pg != nil {
		if err := a.pg.Stop(ctx); err != nil {
			a.fail("stop", err)
		}
	}
	if err := a.marker.set(membership{ClusterID: clusterID, Deactivated: true, Since: time.Now(), By: by}); err != nil {
		a.fail("deactivate", err)
		return
	}
	a.events.add(a.cfg.NodeName, "teardown", "cluster torn down by "+by+": this node is deactivated and needs a new deployment to rejoin")
	a.stopRaft()
}

// stopRaft leaves consensus for good and keeps its files aside.
func (a *Agent) stopRaft() {
	a.nodeMu.Lock()
	n := a.node
	a.node = nil
	a.nodeMu.Unlock()
	if n == nil {
		return
	}
	if err := n.Shutdown(); err != nil {
		a.log.Warn("raft shutdown", "err", err)
	}
	dst := a.cfg.RaftDir() + ".old-" + time.Now().UTC().Format("20060102T150405")
	if err := os.Rename(a.cfg.RaftDir(), dst); err != nil {
		a.log.Warn("keep raft state aside", "err", err)
	}
}

// manageSync keeps synchronous_standby_names on the Active node: the peer
// while it streams; after SyncDegradeWait without it, "" in sync mode (so
// writes continue, with an event), unchanged in sync-strict mode.
func (a *Agent) manageSync(ctx context.Context, st *cluster.State) {
	mode := st.Settings.ReplicationMode
	if mode == cluster.ModeAsync {
		return
	}
	peer, ok := st.Peer(a.cfg.NodeName)
	if !ok {
		return
	}
	db, err := a.pg.Status(ctx)
	if err != nil {
		return
	}
	streaming := false
	for _, r := range db.Replicas {
		if r.ApplicationName == peer.Name && r.State == "streaming" {
			streaming = true
		}
	}
	want := pg.SyncStandbyName(peer.Name)
	a.mu.Lock()
	if streaming {
		a.peerLostAt = time.Time{}
	} else if a.peerLostAt.IsZero() {
		a.peerLostAt = time.Now()
	}
	lostFor := time.Duration(0)
	if !a.peerLostAt.IsZero() {
		lostFor = time.Since(a.peerLostAt)
	}
	degraded := a.syncDegraded
	a.mu.Unlock()
	switch {
	case !streaming && mode == cluster.ModeSync && lostFor > time.Duration(a.cfg.Timers.SyncDegradeWait):
		want = ""
		if !degraded {
			a.apply(ctx, cluster.Command{Type: cluster.CmdEvent, Kind: "replication",
				Detail: fmt.Sprintf("%s lost for %s: replication degraded to async so writes continue", peer.Name, lostFor.Round(time.Second))})
		}
	case streaming && degraded:
		a.apply(ctx, cluster.Command{Type: cluster.CmdEvent, Kind: "replication", Detail: peer.Name + " streams again: synchronous replication restored"})
	}
	a.mu.Lock()
	a.syncDegraded = want == ""
	a.mu.Unlock()
	if db.SynchronousStandbyNames != want {
		if err := a.pg.SetSynchronousStandbyNames(ctx, want); err != nil {
			a.fail("synchronous standby names", err)
		}
	}
}

// heartbeatLoop runs the heartbeat with the peer once the cluster's key is
// known, and feeds it this node's position; what the peer announces is kept
// for the promotion decision.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	peer, ok := a.cfg.PeerMember()
	if !ok || a.cfg.IsWitness() || a.id == nil {
		return
	}
	// The key comes from the replicated state and is kept on disk, so the
	// heartbeat runs even while consensus cannot (a node that restarts
	// alone learns from the heartbeats whether it was replaced).
	keyFile := filepath.Join(a.cfg.StateDir, "heartbeat.key")
	key, _ := os.ReadFile(keyFile)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for len(key) == 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := a.raftNode(); n != nil {
			key = n.State().HeartbeatKey
		}
	}
	if old, err := os.ReadFile(keyFile); err != nil || !bytes.Equal(old, key) {
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			a.log.Warn("keep the heartbeat key", "err", err)
		}
	}
	self := a.cfg.Self()
	var links []heartbeat.Link
	if self.HeartbeatAddr != "" && peer.HeartbeatAddr != "" {
		links = append(links, heartbeat.Link{Name: "heartbeat",
			Listen: net.JoinHostPort(self.HeartbeatAddr, strconv.Itoa(self.HeartbeatPort)),
			Peer:   net.JoinHostPort(peer.HeartbeatAddr, strconv.Itoa(peer.HeartbeatPort))})
	}
	links = append(links, heartbeat.Link{Name: "public",
		Listen: net.JoinHostPort(self.PublicAddr, strconv.Itoa(self.HeartbeatPort)),
		Peer:   net.JoinHostPort(peer.PublicAddr, strconv.Itoa(peer.HeartbeatPort))})
	hb, err := heartbeat.New(heartbeat.Config{
		Node: a.cfg.NodeName, PeerNode: peer.Name, Links: links,
		Interval:  time.Duration(a.cfg.Timers.Heartbeat),
		DeadAfter: time.Duration(a.cfg.Timers.HeartbeatDead),
		Key:       key, Logger: a.log,
	})
	if err != nil {
		a.fail("heartbeat", err)
		return
	}
	a.hbMu.Lock()
	a.hb = hb
	a.hbMu.Unlock()
	done := make(chan error, 1)
	go func() { done <- hb.Run(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				a.fail("heartbeat", err)
			}
			return
		case <-hb.Changed():
			a.kickSampler()
		case <-t.C:
			a.exchangePositions(hb)
		}
	}
}

// beat is the application data carried by every heartbeat.
type beat struct {
	Role  string `json:"role"`
	LSN   uint64 `json:"lsn"`
	Sync  string `json:"sync,omitempty"`
	Epoch uint64 `json:"epoch"`
}

func (a *Agent) exchangePositions(hb *heartbeat.Heartbeat) {
	// A node whose cluster services an operator stopped takes no part in
	// the heartbeat, as operators of such appliances expect ("heartbeat
	// disconnected" after ha_cluster_stop): the Active node knows it from
	// the replicated state, so its silence is not a loss (tieBreakerLoop).
	if n := a.raftNode(); n != nil {
		me, ok := n.State().Member(a.cfg.NodeName)
		if hb.SetPaused(ok && me.Stopped) {
			a.kickSampler()
		}
		if hb.Paused() {
			return
		}
	}
	local := a.localStatus()
	db := local.GetDatabase()
	b := beat{Role: db.GetRole().Word(), LSN: db.GetCurrentLsn()}
	if db.GetRole() == hapb.DatabaseRole_DATABASE_ROLE_STANDBY {
		b.LSN = db.GetReceiveLsn()
	}
	for _, r := range db.GetReplicas() {
		if r.GetSyncState() == "sync" {
			b.Sync = r.GetApplicationName()
		}
	}
	if n := a.raftNode(); n != nil {
		b.Epoch = n.State().Epoch
	}
	if buf, err := json.Marshal(b); err == nil {
		_ = hb.SetPayload(buf)
	}
	payload, at := hb.PeerPayload()
	var pb beat
	if len(payload) == 0 || json.Unmarshal(payload, &pb) != nil {
		return
	}
	a.mu.Lock()
	a.peerBeatRole, a.peerBeatAt, a.peerBeatEpoch = pb.Role, at, pb.Epoch
	a.mu.Unlock()
	if pb.Role != "primary" {
		return
	}
	a.mu.Lock()
	if at.After(a.primaryAt) {
		a.primaryLSN, a.primarySync, a.primaryAt = pb.LSN, pb.Sync, at
	}
	a.mu.Unlock()
}

func (a *Agent) heartbeats() *heartbeat.Heartbeat {
	a.hbMu.Lock()
	defer a.hbMu.Unlock()
	return a.hb
}

// tieBreakerLoop decides for a pair without a witness (see
// Config.TieBreaker), every heartbeat interval:
//   - a Standby whose peer, the Active node, has been silent on every link
//     for FailoverTimeout and that reaches the tie-breaker takes over
//     (as an operator's forced takeover would);
//   - an Active node whose peer has been silent on every link for half of
//     it and that cannot reach the tie-breaker stops writing and releases
//     the VIP first.
func (a *Agent) tieBreakerLoop(ctx context.Context) {
	if a.cfg.TieBreaker == "" || a.cfg.IsWitness() || a.pg == nil || a.cfg.FailoverPolicy != "auto" {
		return
	}
	t := time.NewTicker(time.Duration(a.cfg.Timers.Heartbeat))
	defer t.Stop()
	var silentSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hb, n := a.heartbeats(), a.raftNode()
		if hb == nil || n == nil || a.othersMayElect() {
			silentSince = time.Time{}
			continue
		}
		if hb.Connected() {
			silentSince = time.Time{}
			continue
		}
		if silentSince.IsZero() {
			silentSince = time.Now()
		}
		silent := time.Since(silentSince) + time.Duration(a.cfg.Timers.HeartbeatDead)
		st := n.State()
		if st.Maintenance || st.ID == "" || stoppedPair(st) {
			// A member whose cluster services were stopped is silent on
			// purpose (its heartbeat is paused): not a loss to act on.
			silentSince = time.Time{}
			continue
		}
		timeout := time.Duration(a.cfg.Timers.FailoverTimeout)
		switch {
		case st.Active == a.cfg.NodeName && (a.established.Load() || a.holding.Load()) && silent > timeout/2:
			if !a.reachTieBreaker(ctx) {
				a.events.add(a.cfg.NodeName, "tie-breaker", fmt.Sprintf("peer silent on every link for %s and tie-breaker %s unreachable: stopping writes", silent.Round(100*time.Millisecond), a.cfg.TieBreaker))
				a.revoke(ctx, "isolated: no peer, no tie-breaker")
			}
		case st.Active != "" && st.Active != a.cfg.NodeName && silent > timeout:
			db, err := a.pg.Status(ctx)
			if err != nil || db.Role != pg.RoleStandby || !a.reachTieBreaker(ctx) {
				continue
			}
			a.events.add(a.cfg.NodeName, "tie-breaker", fmt.Sprintf("%s silent on every link for %s and tie-breaker %s reachable: taking over", st.Active, silent.Round(100*time.Millisecond), a.cfg.TieBreaker))
			if err := a.forceTakeover(st, func(p *hapb.Progress) error {
				a.log.Info("automatic takeover", "step", p.GetStep())
				return nil
			}); err != nil {
				a.fail("automatic takeover", err)
			}
			silentSince = time.Time{}
		}
	}
}

// stoppedPair reports whether either data node's cluster services are
// stopped by an operator, as the replicated state records it.
func stoppedPair(st *cluster.State) bool {
	for _, m := range st.Members {
		if m.Kind == cluster.KindData && m.Stopped {
			return true
		}
	}
	return false
}

// reachTieBreaker reports whether the tie-breaker accepts a TCP connection.
func (a *Agent) reachTieBreaker(ctx context.Context) bool {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", a.cfg.TieBreaker)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
