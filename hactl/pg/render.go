package pg

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// serverConf is everything postgresql.conf depends on. Rendering is pure so
// it can be tested by tables.
type serverConf struct {
	NodeName                string
	ListenAddr              string
	Port                    int
	SocketDir               string
	MaxSlotWALKeepSize      string
	WALKeepSize             string
	SynchronousStandbyNames string
	// Standby is set when the server must start as a standby.
	Standby *standbyConf
}

type standbyConf struct {
	Upstream Upstream
	PassFile string
}

// renderServerConf renders postgresql.conf.
func renderServerConf(c serverConf) string {
	var b strings.Builder
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	b.WriteString("# Managed by hapair (hactl): rewritten before every start. Do not edit.\n")
	set("listen_addresses", quoteConf(c.ListenAddr))
	set("port", strconv.Itoa(c.Port))
	set("unix_socket_directories", quoteConf(c.SocketDir))
	set("unix_socket_permissions", "0700")
	set("cluster_name", quoteConf(c.NodeName))
	set("max_connections", "100")
	set("password_encryption", "scram-sha-256")
	b.WriteString("\n# Replication and rewind\n")
	set("wal_level", "replica")
	set("wal_log_hints", "on")
	set("max_wal_senders", "10")
	set("max_replication_slots", "10")
	set("max_slot_wal_keep_size", quoteConf(c.MaxSlotWALKeepSize))
	set("wal_keep_size", quoteConf(c.WALKeepSize))
	set("hot_standby", "on")
	set("hot_standby_feedback", "on")
	set("wal_receiver_status_interval", "'1s'")
	set("wal_sender_timeout", "'10s'")
	set("wal_receiver_timeout", "'10s'")
	set("wal_retrieve_retry_interval", "'1s'")
	set("synchronous_commit", "on")
	set("synchronous_standby_names", quoteConf(c.SynchronousStandbyNames))
	set("recovery_target_timeline", "'latest'")
	if c.Standby != nil {
		set("primary_conninfo", quoteConf(primaryConninfo(c.NodeName, c.Standby)))
		set("primary_slot_name", quoteConf(c.Standby.Upstream.SlotName))
	}
	b.WriteString("\n# Logging (pg_ctl -l sends stderr to the log file)\n")
	set("logging_collector", "off")
	set("log_line_prefix", "'%m [%p] %q%u@%d '")
	set("log_connections", "off")
	set("log_replication_commands", "on")
	set("log_min_messages", "warning")
	set("log_timezone", "'UTC'")
	set("timezone", "'UTC'")
	return b.String()
}

func primaryConninfo(node string, s *standbyConf) string {
	return conninfo([][2]string{
		{"host", s.Upstream.Host},
		{"port", strconv.Itoa(s.Upstream.Port)},
		{"user", ReplicationUser},
		{"passfile", s.PassFile},
		{"application_name", node},
		{"connect_timeout", "3"},
		{"keepalives_idle", "5"},
		{"keepalives_interval", "2"},
		{"keepalives_count", "3"},
	})
}

// renderHBA renders pg_hba.conf: the superuser over the unix socket through
// the ident map, the replication role from the peers only, applications from
// the client networks with a password. Nothing else.
func renderHBA(peerAddrs, clientNets []string) string {
	var b strings.Builder
	b.WriteString("# Managed by hapair (hactl): rewritten before every start. Do not edit.\n")
	b.WriteString("# TYPE  DATABASE     USER  ADDRESS  METHOD\n")
	b.WriteString("local   all          all   peer map=hapair\n")
	for _, a := range peerAddrs {
		cidr := hostCIDR(a)
		fmt.Fprintf(&b, "host    replication  %s  %s  scram-sha-256\n", ReplicationUser, cidr)
		// pg_rewind reads files through SQL functions in database "postgres".
		fmt.Fprintf(&b, "host    postgres     %s  %s  scram-sha-256\n", ReplicationUser, cidr)
	}
	for _, n := range clientNets {
		// The replication role logs in only from the peers, above.
		fmt.Fprintf(&b, "host    all          %s  %s  reject\n", ReplicationUser, n)
		fmt.Fprintf(&b, "host    all          all   %s  scram-sha-256\n", n)
	}
	return b.String()
}

// renderIdent renders pg_ident.conf: map "hapair" lets each given OS user
// log in as the superuser over the unix socket.
func renderIdent(osUsers []string) string {
	var b strings.Builder
	b.WriteString("# Managed by hapair (hactl): rewritten before every start. Do not edit.\n")
	seen := map[string]bool{}
	for _, u := range osUsers {
		if u == "" || seen[u] {
			continue
		}
		seen[u] = true
		fmt.Fprintf(&b, "hapair  %s  %s\n", u, Superuser)
	}
	return b.String()
}

// renderPgpass renders a libpq password file line for the replication role.
func renderPgpass(c Credential) string {
	esc := func(s string) string {
		s = strings.ReplaceAll(s, `\`, `\\`)
		return strings.ReplaceAll(s, ":", `\:`)
	}
	return fmt.Sprintf("*:*:*:%s:%s\n", esc(c.User), esc(c.Password))
}

func hostCIDR(addr string) string {
	ip := net.ParseIP(addr)
	if ip != nil && ip.To4() == nil {
		return ip.String() + "/128"
	}
	return addr + "/32"
}

// quoteConf quotes a value for postgresql.conf.
func quoteConf(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// conninfo builds a libpq keyword/value connection string with every value
// quoted, so no value can inject another keyword.
func conninfo(kv [][2]string) string {
	parts := make([]string, 0, len(kv))
	for _, p := range kv {
		v := strings.ReplaceAll(p[1], `\`, `\\`)
		v = strings.ReplaceAll(v, "'", `\'`)
		parts = append(parts, p[0]+"='"+v+"'")
	}
	return strings.Join(parts, " ")
}

// quoteLiteral quotes a SQL string literal (standard_conforming_strings on).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteIdent quotes a SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
