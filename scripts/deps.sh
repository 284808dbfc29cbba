#!/bin/sh
# Installs the Debian 12 packages vinr-webhookd needs to build, run and test,
# but only those that are missing, so that a second run costs nothing.
# Arguments name more packages (`make deb`: the packaging tools).
set -eu

PKGS="gcc make pkg-config
libmicrohttpd-dev libssl-dev libcjson-dev libsqlite3-dev sqlite3 libpq-dev
libcurl4-openssl-dev libinih-dev libsystemd-dev
libcmocka-dev python3 python3-pytest curl openssl
nginx-light systemd logrotate man-db"
# `make deb` asks for the packaging tools too; nothing else does.
PKGS="$PKGS $*"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: need root to apt-get install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Packages such as nginx would start their service on install; the tests
# start their own on loopback, so keep the package scripts from doing it.
prc=/usr/sbin/policy-rc.d
if [ ! -e $prc ]; then
	printf '#!/bin/sh\nexit 101\n' > $prc
	chmod +x $prc
	trap 'rm -f $prc' EXIT
fi
# The PostgreSQL server (make deps-pg) is for the throwaway clusters of the
# tests and `make run-pg` (scripts/pg-scratch.sh): the package's own "main"
# cluster would only take memory and port 5432.
case "$missing" in *postgresql*)
	if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
		mkdir -p /etc/postgresql-common
		echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
	fi
esac
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
