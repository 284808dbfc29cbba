#!/bin/sh
# A throwaway PostgreSQL cluster on loopback, for the tests, `make run-pg`
# and `make bench`: never the system's.
#
#   pg-scratch.sh start DIR PORT PASSWORD   initdb DIR/data (once) and start it
#   pg-scratch.sh stop DIR                  stop it (fast shutdown)
#   pg-scratch.sh kill DIR                  stop it at once (immediate)
#
# The server must not run as root: when we are root it runs as the
# `postgres` user (Debian's package makes it) or else `nobody`, and DIR
# is handed to that user.  It listens on 127.0.0.1:PORT and on a Unix
# socket in DIR.  Local socket connections are trusted (the superuser is
# "postgres"); TCP connections need a password (scram-sha-256).  Role
# "vinr" with PASSWORD owns database "vinr".
set -eu

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bindir" ]; then
	echo "pg-scratch: PostgreSQL is not installed (make deps WITH_PG=1)" >&2
	exit 1
fi

cmd=${1:?usage: pg-scratch.sh start DIR PORT PASSWORD | stop DIR | kill DIR}
dir=${2:?DIR}

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		user=postgres
		getent passwd postgres >/dev/null || user=nobody
		runuser -u "$user" -- "$@"
	else
		"$@"
	fi
}

case $cmd in
start)
	port=${3:?PORT}
	password=${4:?PASSWORD}
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ "$(id -u)" -eq 0 ]; then
		user=postgres
		getent passwd postgres >/dev/null || user=nobody
		chown "$user" "$dir"
		chmod 0755 "$dir"
	fi
	if [ ! -s "$dir/data/PG_VERSION" ]; then
		as_pg "$bindir/initdb" -D "$dir/data" -U postgres -E UTF8 \
		    --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 \
		    --no-sync >"$dir/initdb.log" 2>&1 ||
		    { cat "$dir/initdb.log" >&2; exit 1; }
		cat >>"$dir/data/postgresql.conf" <<-CONF
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$dir'
		max_connections = 200
		shared_buffers = 32MB
		CONF
		fresh=1
	else
		fresh=0
	fi
	as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
	    -o "-p $port -k $dir" start >/dev/null
	if [ $fresh -eq 1 ]; then
		as_pg "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres \
		    -v ON_ERROR_STOP=1 -q -v pw="$password" >/dev/null <<-'SQL'
		CREATE ROLE vinr LOGIN PASSWORD :'pw';
		CREATE DATABASE vinr OWNER vinr;
		SQL
	fi
	;;
stop|kill)
	mode=fast
	[ "$cmd" = kill ] && mode=immediate
	[ -f "$dir/data/postmaster.pid" ] || exit 0
	as_pg "$bindir/pg_ctl" -D "$dir/data" -m $mode -w -t 60 stop >/dev/null
	;;
*)
	echo "pg-scratch: unknown command $cmd" >&2
	exit 64
	;;
esac
