#!/usr/bin/env bash
# Checks for (and, as root, installs) the system packages hapair needs.
#   ensure-deps.sh postgres   PostgreSQL 15 server binaries
#   ensure-deps.sh protoc     the protobuf compiler (for `make proto`)
#   ensure-deps.sh ssh        the OpenSSH client and ssh-keygen (the console's
#                             tests and the demo's smoke check drive the real ssh)
# `make deps` (hence `make test` and `make demo`) asks for postgres and ssh.
set -euo pipefail

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
apt_updated=0

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-deps: $* missing and not root: install it with: sudo apt-get install -y $*" >&2
    exit 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    echo "ensure-deps: apt-get update" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  echo "ensure-deps: installing $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_ssh() {
  if ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
    apt_install openssh-client
  fi
}

for what in "$@"; do
  case "$what" in
    postgres)
      if [ ! -x "$PG_BINDIR/postgres" ] || [ ! -x "$PG_BINDIR/pg_basebackup" ] || [ ! -x "$PG_BINDIR/pg_rewind" ]; then
        apt_install postgresql-15
        # The Debian package starts a default cluster; hapair runs its own.
        if command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main'; then
          pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
        fi
      fi
      if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        echo "ensure-deps: running as root needs the 'postgres' OS user (PostgreSQL refuses root)" >&2
        exit 1
      fi
      ;;
    protoc)
      if ! command -v protoc >/dev/null || [ ! -f /usr/include/google/protobuf/timestamp.proto ]; then
        apt_install protobuf-compiler libprotobuf-dev
      fi
      ;;
    ssh)
      ensure_ssh
      ;;
    *)
      echo "ensure-deps: unknown dependency $what" >&2
      exit 2
      ;;
  esac
done
