#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server: initdb in a temporary directory, a free loopback port,
# TEST_DATABASE_URL exported, and the server stopped and removed when the command ends, whatever its outcome.
# If TEST_DATABASE_URL is already set, that server is used instead and nothing is started.
set -euo pipefail

if [[ -n "${TEST_DATABASE_URL:-}" ]]; then
    exec "$@"
fi

bindir=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
workdir=$(mktemp -d /tmp/dialer-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
run_as=()
if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root.
    chown postgres "$workdir"
    run_as=(runuser -u postgres --)
fi

cleanup() {
    "${run_as[@]}" "$bindir/pg_ctl" -D "$workdir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

"${run_as[@]}" "$bindir/initdb" -D "$workdir/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${run_as[@]}" "$bindir/pg_ctl" -D "$workdir/data" -l "$workdir/server.log" -w -t 30 \
    -o "-p $port -k $workdir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "test PostgreSQL on 127.0.0.1:$port" >&2
"$@"
