#!/usr/bin/env bash
# Make sure PostgreSQL, Mosquitto and Redis answer on loopback: start them when installed but
# stopped, install them with apt-get when missing. Idempotent; prints what it did.
set -euo pipefail

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- ; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  echo "services: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

ensure_postgres() {
  if port_open 5432; then echo "services: postgresql up"; return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "services: installing postgresql"
    apt_install postgresql
    local ver hba
    ver=$(ls /etc/postgresql | sort -V | tail -n1)
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    # The test suite connects as postgres over loopback without a password (trust), as on CI.
    sed -i -E 's/^(local|host)(\s+all\s+all\s+.*)\s(peer|scram-sha-256|md5)$/\1\2 trust/' "$hba"
    sed -i -E 's/^(local\s+all\s+postgres\s+)peer$/\1trust/' "$hba"
  fi
  local ver
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  echo "services: starting postgresql $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  # the package may have started the cluster before pg_hba.conf was edited: reload it
  pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
  wait_port 5432 postgresql
}

ensure_mosquitto() {
  if port_open 1883; then echo "services: mosquitto up"; return; fi
  command -v mosquitto >/dev/null || { echo "services: installing mosquitto"; apt_install mosquitto; }
  echo "services: starting mosquitto"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d -p 1883
  fi
  wait_port 1883 mosquitto
}

ensure_redis() {
  if port_open 6379; then echo "services: redis up"; return; fi
  command -v redis-server >/dev/null || { echo "services: installing redis"; apt_install redis-server; }
  echo "services: starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 redis
}

ensure_tools() {
  # mosquitto for tests that run a broker of their own (and mosquitto_passwd, openssl for the
  # TLS tests); chromium for the dashboard tests.
  command -v mosquitto >/dev/null || apt_install mosquitto
  command -v mosquitto_passwd >/dev/null || apt_install mosquitto-clients mosquitto
  command -v openssl >/dev/null || apt_install openssl
  command -v chromium >/dev/null || { echo "services: installing chromium"; apt_install chromium; }
}

ensure_postgres
ensure_mosquitto
ensure_redis
ensure_tools
