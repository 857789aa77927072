#!/usr/bin/env bash
# Install (where missing) and start Postgres, Redis, NATS (JetStream) and ClickHouse on 127.0.0.1.
# Idempotent: a service whose port already answers is left alone. Debian 12, as root, no systemd.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
STATE=${SERVICES_DIR:-/var/tmp/campaign-express-services}
mkdir -p "$STATE"
log() { printf '[services %(%H:%M:%S)T] %s\n' -1 "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # name, seconds, command...
  local name=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && { log "$name up"; return 0; }; sleep 0.1; done
  log "$name did not come up in ${secs}s"; return 1
}

need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server      >/dev/null || need+=(redis-server redis-tools)
command -v nats-server       >/dev/null || need+=(nats-server)
command -v clickhouse-server >/dev/null || need+=(clickhouse-server clickhouse-client)
command -v curl              >/dev/null || need+=(curl)
# HAProxy: the suite runs the production docker/haproxy.cfg with the real binary (Debian puts it in /usr/sbin)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
if [ "${WITH_BROWSER:-0}" = 1 ]; then
  command -v chromium     >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi
if ((${#need[@]})); then
  log "apt-get install ${need[*]}"
  for i in 1 2 3 4 5 6; do   # apt-get update does not wait on the lists lock: retry
    apt-get update -qq && break || { log "apt-get update failed (lock?), retry $i"; sleep 10; }
  done
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need[@]}" >"$STATE/apt.log" 2>&1 \
    || { tail -20 "$STATE/apt.log"; exit 1; }
fi

# PostgreSQL, trust auth on loopback
PGVER=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! port_open 5432; then
  pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$PGVER main" || pg_createcluster "$PGVER" main >/dev/null
  HBA=/etc/postgresql/$PGVER/main/pg_hba.conf
  if ! grep -q '^# ci-trust' "$HBA"; then
    cp "$HBA" "$HBA.orig"
    printf '# ci-trust\nlocal all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' >"$HBA"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start
fi
wait_for postgres 30 pg_isready -h 127.0.0.1 -p 5432 -q

# Redis
if ! port_open 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir "$STATE" --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
fi
wait_for redis 10 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'

# NATS with JetStream
if ! port_open 4222; then
  mkdir -p "$STATE/nats"
  nohup nats-server -a 127.0.0.1 -p 4222 -m 8222 -js -sd "$STATE/nats" \
    -P "$STATE/nats.pid" -l "$STATE/nats.log" </dev/null >/dev/null 2>&1 &
fi
wait_for nats 10 bash -c '(exec 3<>/dev/tcp/127.0.0.1/4222)'

# ClickHouse (Debian's 18.16)
if ! port_open 9000; then
  install -d -o clickhouse -g clickhouse "$STATE/clickhouse"
  runuser -u clickhouse -- /usr/sbin/clickhouse-server --config-file=/etc/clickhouse-server/config.xml \
    --pid-file="$STATE/clickhouse/clickhouse.pid" --daemon
fi
wait_for clickhouse 30 sh -c 'curl -sf http://127.0.0.1:8123/ping | grep -q Ok'
