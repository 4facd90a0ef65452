#!/usr/bin/env bash
# The network lab of ../shared/LAB.md, built from network namespaces.
#
#   scripts/lab.sh up       build it (tearing down leftovers first)
#   scripts/lab.sh down     tear it down
#   scripts/lab.sh status   what exists
#
# Hosts (namespaces)  public 198.18.0.0/24   heartbeat 169.254.0.0/24
#   <p>-primary       198.18.0.5 (eth0)      169.254.0.1 (eth1)
#   <p>-secondary     198.18.0.10 (eth0)     169.254.0.2 (eth1)
#   <p>-witness       198.18.0.20 (eth0)
#   <p>-client        198.18.0.100 (eth0)
# The public network is one bridge, in its own namespace <p>-net so nothing
# touches the host's; the heartbeat link is a separate veth pair between the
# two appliance hosts. <p> is $HAPAIR_LAB_PREFIX (default "hap").
# Cut a link: ip -n <p>-primary link set eth1 down. Needs root.
set -euo pipefail
P=${HAPAIR_LAB_PREFIX:-hap}
if ! [[ "$P" =~ ^[a-z][a-z0-9]{0,5}$ ]]; then
  echo "lab: HAPAIR_LAB_PREFIX=$P: want 1-6 lowercase letters or digits, starting with a letter" >&2
  exit 64
fi
HOSTS=(primary secondary witness client)
declare -A PUB=([primary]=198.18.0.5 [secondary]=198.18.0.10 [witness]=198.18.0.20 [client]=198.18.0.100)
declare -A SHORT=([primary]=p [secondary]=s [witness]=w [client]=c)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "lab: needs root (it creates network namespaces)" >&2
    exit 77
  fi
}

down() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${P}-(net|primary|secondary|witness|client)$" || true); do
    # Processes are stopped by whoever started them, by PID; a namespace
    # that still has some lives on, unnamed, until they exit.
    ip netns del "$ns"
  done
}

up() {
  down
  ip netns add "$P-net"
  ip -n "$P-net" link add br0 type bridge
  ip -n "$P-net" link set br0 up
  ip -n "$P-net" link set lo up
  local h s
  for h in "${HOSTS[@]}"; do
    s=${SHORT[$h]}
    ip netns add "$P-$h"
    ip -n "$P-$h" link set lo up
    # veth: eth0 in the host, <p>-<s>pub on the bridge.
    ip link add "$P-${s}pub" type veth peer name "$P-${s}eth0"
    ip link set "$P-${s}pub" netns "$P-net"
    ip link set "$P-${s}eth0" netns "$P-$h"
    ip -n "$P-$h" link set "$P-${s}eth0" name eth0
    ip -n "$P-net" link set "$P-${s}pub" master br0 up
    ip -n "$P-$h" addr add "${PUB[$h]}/24" dev eth0
    ip -n "$P-$h" link set eth0 up
    # Learn neighbours from gratuitous ARP (the VIP moving).
    ip netns exec "$P-$h" sysctl -qw net.ipv4.conf.eth0.arp_accept=1
  done
  ip link add "$P-phb" type veth peer name "$P-shb"
  ip link set "$P-phb" netns "$P-primary"
  ip link set "$P-shb" netns "$P-secondary"
  ip -n "$P-primary" link set "$P-phb" name eth1
  ip -n "$P-secondary" link set "$P-shb" name eth1
  ip -n "$P-primary" addr add 169.254.0.1/24 dev eth1
  ip -n "$P-secondary" addr add 169.254.0.2/24 dev eth1
  ip -n "$P-primary" link set eth1 up
  ip -n "$P-secondary" link set eth1 up
  # Bounded wait until every link is up (veth carrier on both ends).
  local i all
  for ((i = 0; i < 50; i++)); do
    all=1
    for h in "${HOSTS[@]}"; do
      ip -n "$P-$h" link show eth0 | grep -q 'state UP' || all=0
    done
    for h in primary secondary; do
      ip -n "$P-$h" link show eth1 | grep -q 'state UP' || all=0
    done
    [ "$all" -eq 1 ] && return 0
    sleep 0.1
  done
  echo "lab: links are not up" >&2
  return 1
}

status() {
  ip netns list | grep -E "^${P}-" || echo "lab $P: nothing"
}

case "${1:-}" in
  up) need_root; up ;;
  down) need_root; down ;;
  status) status ;;
  *) echo "usage: scripts/lab.sh up|down|status" >&2; exit 64 ;;
esac
