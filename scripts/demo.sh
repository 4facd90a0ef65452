#!/usr/bin/env bash
# make demo: a whole hapair pair on this machine.
#
# Two data agents, primary-node and secondary-node, each with its own
# PostgreSQL 15 on its own loopback address (127.0.0.5 and 127.0.0.10, the last
# octets of the reference deployment), and a witness (127.0.0.20): three raft
# voters. The primary is initialised and becomes Active: it holds the VIP
# 127.0.0.12 (user space: a listener forwarding port 5432 to the Active
# database). The secondary is cloned with pg_basebackup and streams through a
# replication slot. The agents talk over mutual TLS with a CA made for the demo.
#
# Each data node also runs its SSH console (hactl console): primary-node on
# 127.0.0.1:2222, secondary-node on 127.0.0.1:2223. Each prints its admin
# password once; the demo also makes an ed25519 key in its directory,
# authorises it for admin and checks `ssh ... admin@127.0.0.1 ha_status`.
#
# Runs until Ctrl-C (or HAPAIR_DEMO_SECONDS), then stops everything it started.
#   HAPAIR_DEMO_DIR       where state goes (default /tmp/hapair-demo; wiped at start)
#   HAPAIR_DEMO_SECONDS   stop by itself after this many seconds (0: wait for Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh ssh

HACTL=${HACTL:-$PWD/bin/hactl}
DIR=${HAPAIR_DEMO_DIR:-${TMPDIR:-/tmp}/hapair-demo}
SECONDS_TO_RUN=${HAPAIR_DEMO_SECONDS:-0}
NODES=(witness primary-node secondary-node)
declare -A IP=([primary-node]=127.0.0.5 [secondary-node]=127.0.0.10 [witness]=127.0.0.20)
declare -A BOOT=([primary-node]=primary [secondary-node]=standby [witness]=)
VIP=127.0.0.12
PG_PORT=5432
CONSOLES=(primary-node secondary-node)
declare -A SSH_PORT=([primary-node]=2222 [secondary-node]=2223)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# stop_pid PID NAME: SIGTERM, wait (bounded), then SIGKILL.
stop_pid() {
  local pid=$1 name=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "demo: $name ($pid) did not stop in 60s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

# Leftovers of an earlier run: agents by their PID files, then any
# PostgreSQL they left behind (an agent killed with -9 leaves it running).
cleanup_leftovers() {
  local n pidf pgd
  for n in "${CONSOLES[@]}"; do
    pidf="$DIR/$n-console.pid"
    if [ -f "$pidf" ]; then
      stop_pid "$(cat "$pidf")" "old console of $n"
      rm -f "$pidf"
    fi
  done
  for n in "${NODES[@]}"; do
    pidf="$DIR/$n.pid"
    if [ -f "$pidf" ]; then
      stop_pid "$(cat "$pidf")" "old agent $n"
      rm -f "$pidf"
    fi
    pgd="$DIR/$n/pg/data"
    if [ -f "$pgd/postmaster.pid" ]; then
      stop_pid "$(head -1 "$pgd/postmaster.pid")" "old PostgreSQL of $n"
    fi
  done
  rm -rf "$DIR"
}

PIDS=()
finish() {
  trap - INT TERM EXIT
  echo
  say "stopping the demo"
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${PIDS[$i]}" "process"
  done
  for n in "${NODES[@]}"; do rm -f "$DIR/$n.pid" "$DIR/$n-console.pid" "$DIR/$n-console.out"; done
  say "stopped; state and logs are left in $DIR"
}

[ -x "$HACTL" ] || { echo "demo: $HACTL not built (run make build)" >&2; exit 1; }
cleanup_leftovers
mkdir -p "$DIR"
chmod 0711 "$DIR"

say "making the demo cluster's CA and node identities"
"$HACTL" pki init --dir "$DIR/ca" --cluster demo >/dev/null
members=""
for n in "${NODES[@]}"; do
  kind=data; pgport=",\"pg_port\": $PG_PORT"
  if [ "$n" = witness ]; then kind=witness; pgport=""; fi
  members+="${members:+,}
    {\"name\": \"$n\", \"kind\": \"$kind\", \"public_addr\": \"${IP[$n]}\", \"agent_port\": 7400, \"raft_port\": 7401, \"heartbeat_port\": 7402$pgport}"
done
for n in "${NODES[@]}"; do
  "$HACTL" pki issue --ca "$DIR/ca" --node "$n" --ip "${IP[$n]}" --out "$DIR/$n/pki" >/dev/null
  extra=""
  if [ "$n" != witness ]; then
    extra=",
  \"vip\": {\"address\": \"$VIP\", \"mode\": \"userspace\"},
  \"postgres\": {\"replication_from\": [\"127.0.0.1\"], \"client_nets\": [\"127.0.0.0/8\"]},
  \"bootstrap\": \"${BOOT[$n]}\""
  fi
  cat >"$DIR/$n.json" <<JSON
{
  "cluster_name": "demo",
  "node_name": "$n",
  "state_dir": "$DIR/$n",
  "members": [$members
  ]$extra
}
JSON
done
# On loopback every connection comes from 127.0.0.1 whatever address it goes
# to, so the demo admits replication from 127.0.0.1 (a real pair admits the
# peer's own addresses; see README).

trap finish INT TERM EXIT
for n in "${NODES[@]}"; do
  say "starting the agent of $n (${IP[$n]})"
  flags=""
  [ "$n" = witness ] && flags="--witness"
  "$HACTL" agent --config "$DIR/$n.json" $flags >"$DIR/$n.log" 2>&1 &
  PIDS+=($!)
  echo $! >"$DIR/$n.pid"
done

say "waiting for the pair to be healthy (initdb, pg_basebackup, streaming)"
ok=0
for ((i = 0; i < 600; i++)); do
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: an agent exited; its log:" >&2
      tail -n 20 "$DIR"/*.log >&2
      exit 1
    fi
  done
  if "$HACTL" status --socket "$DIR/primary-node/hactl.sock" >/dev/null 2>&1 &&
     "$HACTL" status --socket "$DIR/secondary-node/hactl.sock" >/dev/null 2>&1; then
    ok=1
    break
  fi
  sleep 0.2
done
if [ "$ok" -ne 1 ]; then
  echo "demo: the pair did not become healthy in 120s; logs:" >&2
  tail -n 20 "$DIR"/*.log >&2
  exit 1
fi

"$HACTL" status --socket "$DIR/primary-node/hactl.sock" || true

# The SSH consoles, one per data node. Each prints its admin password once
# on its first start (to a private file read here once, then removed).
KEY="$DIR/demo_ed25519"
ssh-keygen -q -t ed25519 -N "" -C "hapair-demo" -f "$KEY"
for n in "${CONSOLES[@]}"; do
  say "starting the SSH console of $n on 127.0.0.1:${SSH_PORT[$n]}"
  out="$DIR/$n-console.out"
  (umask 077 && : >"$out")
  "$HACTL" console --config "$DIR/$n.json" --listen "127.0.0.1:${SSH_PORT[$n]}" >"$out" 2>"$DIR/$n-console.log" &
  PIDS+=($!)
  echo $! >"$DIR/$n-console.pid"
  pw=""
  for ((i = 0; i < 100; i++)); do
    pw=$(sed -n 's/.*its password, shown once: //p' "$out")
    [ -n "$pw" ] && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$out"
  if [ -z "$pw" ]; then
    echo "demo: the console of $n did not start; its log:" >&2
    tail -n 20 "$DIR/$n-console.log" >&2
    exit 1
  fi
  printf '    admin password of the %s console (shown once): %s\n' "$n" "$pw"
  "$HACTL" console-user --config "$DIR/$n.json" key-add admin "$KEY.pub" >/dev/null
done

say "smoke check: ssh -i $KEY -p 2222 admin@127.0.0.1 ha_status"
SSH_OPTS=(-F /dev/null -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no
  -o UserKnownHostsFile="$DIR/known_hosts" -o LogLevel=ERROR -o ConnectTimeout=5)
ok=0
for ((i = 0; i < 50; i++)); do
  if ssh "${SSH_OPTS[@]}" -p 2222 admin@127.0.0.1 ha_status >"$DIR/smoke.out" 2>&1; then
    ok=1
    break
  fi
  sleep 0.2
done
if [ "$ok" -ne 1 ]; then
  echo "demo: ssh admin@127.0.0.1 -p 2222 ha_status failed; its output and the console's log:" >&2
  cat "$DIR/smoke.out" >&2
  tail -n 20 "$DIR/primary-node-console.log" >&2
  exit 1
fi
echo "    ok: ha_status over ssh exited 0"

P="--socket $DIR/primary-node/hactl.sock"
S="--socket $DIR/secondary-node/hactl.sock"
cat <<INFO

The pair is running (primary-node Active, VIP $VIP).
  The console (the >> prompt):  ssh -p 2222 admin@127.0.0.1      (primary-node; the password above)
                                ssh -p 2223 admin@127.0.0.1      (secondary-node)
  With the demo's key:          ssh -i $KEY -p 2222 admin@127.0.0.1
  Scripted:                     ssh -i $KEY -p 2222 admin@127.0.0.1 ha_status --json
  Console users:                $HACTL console-user --config $DIR/primary-node.json list
  Status (text or --json):      $HACTL status $P
                                $HACTL status $S --json
  Stop/start a node (scenario A): $HACTL stop $P      then  $HACTL start $P
  Switchover, history:          $HACTL switchover $P  ·  $HACTL events $S
  Tear down (scenario C):       $HACTL teardown --yes $P
  The database through the VIP: create a role first, e.g.
    psql -h $DIR/primary-node/pg/run -p $PG_PORT -U postgres -c "CREATE ROLE app LOGIN PASSWORD 'choose-one'"
    psql "host=$VIP port=$PG_PORT user=app dbname=postgres"
  Superuser over a node's own socket: psql -h $DIR/<node>/pg/run -p $PG_PORT -U postgres
  Agent logs: $DIR/primary-node.log  $DIR/secondary-node.log  $DIR/witness.log
  Console logs (audit): $DIR/primary-node-console.log  $DIR/secondary-node-console.log
  PostgreSQL logs: $DIR/<node>/pg/log/postgresql.log

Press Ctrl-C to stop everything.
INFO

if [ "$SECONDS_TO_RUN" -gt 0 ]; then
  sleep "$SECONDS_TO_RUN" &
  wait $! || true
else
  while :; do
    for pid in "${PIDS[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "demo: a process exited unexpectedly; see $DIR/*.log" >&2
        exit 1
      fi
    done
    sleep 1 &
    wait $! || true
  done
fi
