# Sourced by the scripts: a 3-member etcd on loopback (Debian's etcd-server) for a demo or
# a measurement. Needs $work (a scratch dir), the array pids (started processes are added
# to it, so the caller's cleanup stops them) and free_port. Sets etcd_endpoints.
#   start_etcd TOKEN   returns once every member answers its health check (bounded: 20 s
#                      per member), or fails with where to look.

start_etcd() {
  local token="$1" i ok initial="" cport=() pport=()
  etcd_endpoints=""
  for i in 0 1 2; do
    cport[$i]=$(free_port); pport[$i]=$(free_port)
    initial+="${initial:+,}e$i=http://127.0.0.1:${pport[$i]}"
    etcd_endpoints+="${etcd_endpoints:+,}http://127.0.0.1:${cport[$i]}"
  done
  for i in 0 1 2; do
    etcd --name "e$i" --data-dir "$work/etcd/e$i" \
      --listen-client-urls "http://127.0.0.1:${cport[$i]}" --advertise-client-urls "http://127.0.0.1:${cport[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${pport[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pport[$i]}" \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "$token" \
      >"$work/etcd-e$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 0 1 2; do
    ok=0
    for _ in $(seq 1 200); do
      curl -s --max-time 1 "http://127.0.0.1:${cport[$i]}/health" 2>/dev/null | grep -q '"health":"true"' && { ok=1; break; }
      sleep 0.1
    done
    [ "$ok" = 1 ] || { echo "etcd member e$i is not healthy (see $work/etcd-e$i.log)" >&2; return 1; }
  done
}
