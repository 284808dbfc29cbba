#!/bin/sh
# with-pg.sh CMD [ARG...] - runs CMD with a throwaway PostgreSQL cluster
# (scripts/pg-scratch.sh, loopback, a free port) named by VINR_TEST_PG_DSN and
# VINR_TEST_PG_PASSWORD, then stops and removes the cluster.  `make unit`
# runs the unit tests this way, so that the PostgreSQL ones run too.  Without
# PostgreSQL installed, CMD runs alone (those tests skip themselves), unless
# VINR_REQUIRE_PG is set: then it fails.
set -eu
here=$(cd "$(dirname "$0")" && pwd)

if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
	if [ -n "${VINR_REQUIRE_PG:-}" ]; then
		echo "with-pg: PostgreSQL is not installed (make deps-pg)" >&2
		exit 1
	fi
	echo "with-pg: PostgreSQL is not installed: its unit tests skip (make deps-pg)" >&2
	exec "$@"
fi

dir=$(mktemp -d /tmp/vinr-pg-unit.XXXXXX)
chmod 0755 "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
cleanup() {
	"$here/pg-scratch.sh" kill "$dir/c" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$here/pg-scratch.sh" start "$dir/c" "$port" "$password"
VINR_TEST_PG_DSN="postgresql://vinr@127.0.0.1:$port/vinr"
VINR_TEST_PG_PASSWORD=$password
export VINR_TEST_PG_DSN VINR_TEST_PG_PASSWORD
"$@"
