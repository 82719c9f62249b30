#!/usr/bin/env bash
# A local Redis Cluster (3 masters + 3 replicas) for the cluster suites.
#
#   scripts/redis-cluster.sh start    start it (or do nothing if it is already healthy)
#   scripts/redis-cluster.sh stop     shut every node down and remove its directory
#   scripts/redis-cluster.sh status   print `cluster info` and `cluster nodes`; exit 1 if not running
#   scripts/redis-cluster.sh nodes    print only the seed nodes string
#
# `start` and `status` end with one line `REDIS_CLUSTER_NODES=127.0.0.1:7100,...` (the seed
# nodes for ioredis's `new Cluster(...)`), so a caller can do:
#   eval "$(scripts/redis-cluster.sh start | grep '^REDIS_CLUSTER_NODES=')"; export REDIS_CLUSTER_NODES
#
# Environment:
#   CLUSTER_BASE_PORT      first port (default 7100); the nodes use BASE..BASE+5, and Redis
#                          also takes each port + 10000 for the cluster bus
#   CLUSTER_DIR            where configs, data, pidfiles and logs go
#                          (default ${TMPDIR:-/tmp}/cacheback-redis-cluster-BASE)
#   CLUSTER_START_TIMEOUT  seconds `start` waits for a healthy cluster (default 30)
#
# It uses the machine's redis-server/redis-cli (7.0) and never touches the Redis on 6379.
set -euo pipefail

BASE_PORT="${CLUSTER_BASE_PORT:-7100}"
DIR="${CLUSTER_DIR:-${TMPDIR:-/tmp}/cacheback-redis-cluster-${BASE_PORT}}"
START_TIMEOUT="${CLUSTER_START_TIMEOUT:-30}"
HOST=127.0.0.1
NODE_COUNT=6 # 3 masters + 3 replicas: `--cluster-replicas 1` pairs them up

PORTS=()
for ((i = 0; i < NODE_COUNT; i++)); do PORTS+=($((BASE_PORT + i))); done

log() { echo "redis-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

seeds() {
  local IFS=,
  local list=()
  for p in "${PORTS[@]}"; do list+=("$HOST:$p"); done
  echo "${list[*]}"
}

# Every redis-cli call is bounded by `timeout`: a node that hangs (or a port held by
# something that is not Redis) must not hang the script.
cli() { local port=$1; shift; timeout 3 redis-cli -h "$HOST" -p "$port" "$@" 2>/dev/null; }

pidfile() { echo "$DIR/$1/redis.pid"; }

# The pid in a node's pidfile, if that process still exists.
live_pid() {
  local f
  f=$(pidfile "$1")
  [[ -f $f ]] || return 1
  local pid
  pid=$(cat "$f" 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# The field of `cluster info` on one node, e.g. info_field 7100 cluster_state.
info_field() { cli "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"; }

# Healthy means what the suites need, on every node, not just on the first one:
# cluster_state:ok, all 16384 slots assigned and ok, all 6 nodes known, 3 masters with slots,
# and every replica's link to its master up (a replica that has not synced yet makes a
# failover test flaky: it may refuse to take over, or take over without the data).
# Two redis-cli calls per node and no other process: on a busy machine each fork costs
# 10-20 ms, and this check runs in a loop.
has_line() { [[ $'\n'$1$'\n' == *$'\n'"$2"$'\n'* ]]; }
healthy() {
  local p info repl
  for p in "${PORTS[@]}"; do
    info=$(cli "$p" cluster info) || return 1
    info=${info//$'\r'/}
    has_line "$info" 'cluster_state:ok' || return 1
    has_line "$info" 'cluster_slots_assigned:16384' || return 1
    has_line "$info" 'cluster_slots_ok:16384' || return 1
    has_line "$info" "cluster_known_nodes:$NODE_COUNT" || return 1
    has_line "$info" 'cluster_size:3' || return 1
    repl=$(cli "$p" info replication) || return 1
    repl=${repl//$'\r'/}
    if has_line "$repl" 'role:slave'; then
      has_line "$repl" 'master_link_status:up' || return 1
    fi
  done
}

# Why it is not healthy, for the timeout message.
describe() {
  local p
  for p in "${PORTS[@]}"; do
    if ! cli "$p" ping >/dev/null; then
      echo "  $HOST:$p: not answering"
    else
      echo "  $HOST:$p: state=$(info_field "$p" cluster_state)" \
        "slots_ok=$(info_field "$p" cluster_slots_ok)" \
        "known_nodes=$(info_field "$p" cluster_known_nodes)" \
        "role=$(cli "$p" role | head -1)" \
        "$(cli "$p" info replication | tr -d '\r' | grep '^master_link_status:' || true)"
    fi
  done
}

print_nodes() {
  cli "$BASE_PORT" cluster nodes | sort -k2 || true
  echo "REDIS_CLUSTER_NODES=$(seeds)"
}

# Stops the nodes this script started (by their pidfiles), then removes the directory.
# Never kills by name or by port: a Redis on these ports that has no pidfile here is someone
# else's, and is left alone (start then refuses to use its port).
teardown() {
  local p pid
  local pids=()
  for p in "${PORTS[@]}"; do
    if pid=$(live_pid "$p"); then
      # SIGTERM to all at once rather than a redis-cli SHUTDOWN per node: no fork per node,
      # and the nodes are started with shutdown-on-sigterm "nosave now" (nothing to save,
      # no waiting for lagging replicas).
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  # Wait for them to exit so that the ports are free for the next start; SIGKILL a node that
  # does not exit within 5 s (e.g. one that was SIGSTOPped by a test).
  local deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then kill -9 "$pid" 2>/dev/null || true; fi
      sleep 0.05
    done
  done
  # Remove the directory only if this script made it (CLUSTER_DIR may point anywhere);
  # otherwise remove only what it put there.
  if [[ -f $DIR/.redis-cluster-sh ]]; then
    rm -rf "$DIR"
  else
    for p in "${PORTS[@]}"; do rm -rf "${DIR:?}/$p"; done
    rm -f "$DIR/create.log"
  fi
}

start_node() {
  local p=$1
  mkdir -p "$DIR/$p"
  # Flags rather than a config file: the whole setup is visible here. nodes.conf is written
  # by Redis itself; it is per node, in the node's own directory, as Redis requires.
  # repl-diskless-sync-delay 0: by default a master waits 5 s for more replicas before a full
  # sync, so each replica (and a killed master that comes back as one) would take 5 s+ to
  # sync; with one replica per master there is nothing to wait for.
  redis-server \
    --port "$p" \
    --bind "$HOST" \
    --protected-mode no \
    --cluster-enabled yes \
    --cluster-config-file "$DIR/$p/nodes.conf" \
    --cluster-node-timeout 2000 \
    --save "" \
    --appendonly no \
    --repl-diskless-sync-delay 0 \
    --shutdown-on-sigterm "nosave now" \
    --dir "$DIR/$p" \
    --daemonize yes \
    --pidfile "$(pidfile "$p")" \
    --logfile "$DIR/$p/redis.log" \
    >/dev/null
}

cmd_start() {
  command -v redis-server >/dev/null || die "redis-server is not installed"
  command -v redis-cli >/dev/null || die "redis-cli is not installed"

  # Already running and healthy: nothing to do (so .ci/run and a developer can both call it).
  if healthy; then
    log "already running and healthy in $DIR"
    print_nodes
    return 0
  fi

  # Anything else (a crashed node, a half-created cluster, a directory left by a killed run,
  # a node that a failover test SIGKILLed): start from scratch, it takes a few seconds.
  if [[ -d $DIR ]]; then
    log "cleaning up stale leftovers in $DIR"
    teardown
  fi

  local p
  for p in "${PORTS[@]}"; do
    if port_in_use "$p" || port_in_use $((p + 10000)); then
      die "port $p or its cluster bus port $((p + 10000)) is in use by a process this script did not start; set CLUSTER_BASE_PORT to another range"
    fi
  done

  local t0=$SECONDS
  if [[ ! -d $DIR ]]; then
    mkdir -p "$DIR"
    touch "$DIR/.redis-cluster-sh" # marks the directory as this script's, for teardown
  fi
  for p in "${PORTS[@]}"; do start_node "$p"; done

  # --daemonize returns before the node listens: wait for each to answer PING.
  local deadline=$((SECONDS + 10))
  for p in "${PORTS[@]}"; do
    until [[ $(cli "$p" ping) == PONG ]]; do
      ((SECONDS < deadline)) || die "node $HOST:$p did not start; see $DIR/$p/redis.log"
      sleep 0.05
    done
  done

  local addrs=()
  for p in "${PORTS[@]}"; do addrs+=("$HOST:$p"); done
  # redis-cli makes the first 3 addresses masters and the last 3 their replicas; it warns
  # that masters and replicas share a host, which is what a local test cluster is.
  if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
    >"$DIR/create.log" 2>&1; then
    cat "$DIR/create.log" >&2
    die "redis-cli --cluster create failed"
  fi

  # `--cluster create` returns once the nodes agree on the config; gossip and the replicas'
  # first sync still take a moment, and the suites need all of it.
  deadline=$((SECONDS + START_TIMEOUT))
  until healthy; do
    if ((SECONDS >= deadline)); then
      log "the cluster is not healthy after ${START_TIMEOUT}s:"
      describe >&2
      # The nodes are left running to be looked at; the next start or stop cleans them up.
      die "timed out waiting for cluster_state:ok and 16384 slots on every node (logs in $DIR/*/redis.log)"
    fi
    sleep 0.1
  done
  log "started in $((SECONDS - t0))s in $DIR"
  print_nodes
}

cmd_stop() {
  if [[ ! -d $DIR ]]; then
    log "not running (no $DIR)"
    return 0
  fi
  teardown
  log "stopped; cleaned up $DIR"
}

cmd_status() {
  local p up=0
  for p in "${PORTS[@]}"; do
    if live_pid "$p" >/dev/null; then up=$((up + 1)); fi
  done
  if ((up == 0)) || ! cli "$BASE_PORT" ping >/dev/null; then
    # Another node may still answer (e.g. the first one was killed by a test): show it.
    for p in "${PORTS[@]}"; do
      if live_pid "$p" >/dev/null && cli "$p" ping >/dev/null; then
        echo "$HOST:$p answers but $HOST:$BASE_PORT does not ($up of $NODE_COUNT nodes running)"
        cli "$p" cluster info | tr -d '\r'
        cli "$p" cluster nodes | sort -k2
        return 1
      fi
    done
    echo "not running ($DIR)"
    return 1
  fi
  cli "$BASE_PORT" cluster info | tr -d '\r'
  echo
  print_nodes
  if ! healthy; then
    echo "unhealthy ($up of $NODE_COUNT nodes running):"
    describe
    return 1
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  nodes) seeds ;;
  *)
    echo "usage: $0 start|stop|status|nodes" >&2
    exit 2
    ;;
esac
