#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks of the
# PostgreSQL store: initdb --data-checksums into a temporary directory, a
# loopback port, a password generated for this cluster only (SCRAM).
#
#   scripts/postgres-cluster.sh start DIR [PORT] [durable]   prints the URL on stdout
#   scripts/postgres-cluster.sh stop DIR
#
# For the tests it runs with fsync off: they are about behaviour (several
# instances, killed connections, the storage contract), not the disk, and a
# cluster that fsyncs every commit, database creation and checkpoint takes the
# disk from the SQLite tests that time their fsyncs beside it. `durable` (for
# benchmarks and by hand) keeps fsync, synchronous_commit and full-page writes
# on, as in production.
#
# Run as root (CI), the cluster runs as the `postgres` user Debian's package
# creates; otherwise as the calling user. Needs Debian's postgresql package
# (`apt-get install -y postgresql`).
set -euo pipefail

command=${1:?usage: postgres-cluster.sh start|stop DIR [PORT]}
dir=${2:?usage: postgres-cluster.sh start|stop DIR [PORT]}
port=${3:-55432}
if [ "${4:-}" = durable ]; then
    durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
else
    durability="-c fsync=off -c synchronous_commit=on -c full_page_writes=off"
fi
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL is not installed (apt-get install -y postgresql)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    password=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    pwfile="$dir/.pw"
    as_owner sh -c "umask 077; printf '%s\n' '$password' > '$pwfile'"
    as_owner "$bin/initdb" --data-checksums --auth=scram-sha-256 --username=haven --pwfile="$pwfile" \
        --encoding=UTF8 --locale=C -D "$dir/data" >/dev/null
    as_owner rm -f "$pwfile"
    # Loopback only; a socket directory inside the cluster's own directory.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir' -c max_connections=200 $durability" \
        start >/dev/null
    PGPASSWORD="$password" "$bin/psql" -q -h 127.0.0.1 -p "$port" -U haven -d postgres -c "CREATE DATABASE haven" >/dev/null
    echo "postgres://haven:$password@127.0.0.1:$port/haven"
    ;;
stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
*)
    echo "usage: postgres-cluster.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
