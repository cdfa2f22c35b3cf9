#!/usr/bin/env bash
# End-to-end lab: real QUIC (ngtcp2's gtlsserver/gtlsclient, unmodified)
# through two quic-relay sidecars and the relay, across real NAT routers made
# of network namespaces. Nothing here is routed outside the namespaces it
# creates; addresses are documentation ranges and 10/8, inside the lab only.
#
#   wan (relay 203.0.113.10, direct server 203.0.113.20)
#    |-- nat1 (WAN 198.51.100.1) --+-- ha 10.1.0.2 (QUIC client side)
#    |                             +-- hc 10.1.1.2 (another host behind the same NAT)
#    +-- nat2 (WAN 198.51.100.2) ----- hb 10.2.0.2 (QUIC server side)
#
# Needs root, gtlsserver/gtlsclient (ngtcp2-server/-client), iptables,
# conntrack, openssl, iproute2. Prints "N passed, N failed" and exits non-zero
# when a scenario fails. Bounded: every wait has a limit; every process is
# stopped and every namespace deleted on exit, whatever happened.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUNDLE="$root/dist/quic-relay.js"

if [ "$(id -u)" != 0 ]; then
  echo "e2e lab skipped: needs root (network namespaces, iptables, conntrack)"
  exit 0
fi
for tool in gtlsserver gtlsclient iptables conntrack openssl ip node sha256sum; do
  if ! command -v "$tool" >/dev/null; then
    echo "e2e lab skipped: $tool not installed (apt-get install ngtcp2-server ngtcp2-client iptables conntrack openssl iproute2)"
    exit 0
  fi
done
[ -f "$BUNDLE" ] || (cd "$root" && node scripts/build.mjs >/dev/null)

P="qr$$"                     # namespace prefix: parallel runs cannot clash
NS_WAN=$P-wan NS_N1=$P-nat1 NS_N2=$P-nat2 NS_A=$P-ha NS_B=$P-hb NS_C=$P-hc
ALL_NS="$NS_A $NS_B $NS_C $NS_N1 $NS_N2 $NS_WAN"
RELAY_IP=203.0.113.10 DIRECT_IP=203.0.113.20 N1_WAN=198.51.100.1 N2_WAN=198.51.100.2
A_IP=10.1.0.2 C_IP=10.1.1.2 B_IP=10.2.0.2
KEEPALIVE=${E2E_KEEPALIVE_SECS:-2}
WORK=$(mktemp -d /tmp/quic-relay-e2e.XXXXXX)
LAB_START=$(date +%s)
passed=0 failed=0
declare -a FIGURES

log() { printf '[e2e %3ds] %s\n' "$(($(date +%s) - LAB_START))" "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
  for ns in $ALL_NS; do
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
    fi
  done
  sleep 0.3
  for ns in $ALL_NS; do
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    fi
  done
  if [ "${E2E_KEEP:-0}" = 1 ]; then echo "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- topology -----------------------------------------------------------------

nat_rules() { # ns mode(cone|symmetric)
  local ns=$1 extra=""
  [ "${1:-}" = "" ] && return 1
  [ "$2" = symmetric ] && extra="--random-fully"
  in_ns "$ns" iptables -t nat -F POSTROUTING
  in_ns "$ns" iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE $extra
  in_ns "$ns" conntrack -F >/dev/null 2>&1 || true
}

build_lab() {
  for ns in $ALL_NS; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
  in_ns "$NS_WAN" ip addr add $RELAY_IP/32 dev lo
  in_ns "$NS_WAN" ip addr add $DIRECT_IP/32 dev lo
  local i nat wan
  for i in 1 2; do
    nat=$P-nat$i; wan=198.51.100.$i
    ip link add w$i netns "$NS_WAN" type veth peer name wan0 netns "$nat"
    in_ns "$NS_WAN" ip link set w$i up
    in_ns "$NS_WAN" ip route add $wan/32 dev w$i
    in_ns "$nat" ip link set wan0 up
    in_ns "$nat" ip addr add $wan/32 dev wan0
    in_ns "$nat" ip route add $RELAY_IP/32 dev wan0
    in_ns "$nat" ip route add $DIRECT_IP/32 dev wan0
    in_ns "$nat" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$nat" iptables -P FORWARD DROP
    in_ns "$nat" iptables -A FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    in_ns "$nat" iptables -A FORWARD -o wan0 -j ACCEPT
  done
  # LAN links: ha and hc behind nat1 (two ports of one router), hb behind nat2
  local spec host nat lan hostip gw
  for spec in "$NS_A $NS_N1 lan0 $A_IP 10.1.0.1" "$NS_C $NS_N1 lan1 $C_IP 10.1.1.1" "$NS_B $NS_N2 lan0 $B_IP 10.2.0.1"; do
    read -r host nat lan hostip gw <<<"$spec"
    ip link add eth0 netns "$host" type veth peer name "$lan" netns "$nat"
    in_ns "$nat" ip addr add "$gw/24" dev "$lan"
    in_ns "$nat" ip link set "$lan" up
    in_ns "$host" ip addr add "$hostip/24" dev eth0
    in_ns "$host" ip link set eth0 up
    in_ns "$host" ip route add default via "$gw"
  done
  nat_rules "$NS_N1" cone
  nat_rules "$NS_N2" cone
}

# ---- programs -----------------------------------------------------------------

make_files() {
  mkdir -p "$WORK/docroot"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/key.pem" \
    -out "$WORK/cert.pem" -days 1 -subj /CN=lab -addext subjectAltName=DNS:localhost >/dev/null 2>&1
  head -c $((8 * 1024 * 1024)) /dev/urandom > "$WORK/docroot/file.bin"
  head -c $((48 * 1024 * 1024)) /dev/urandom > "$WORK/docroot/big.bin"
  head -c 1024 /dev/urandom > "$WORK/docroot/small.bin"
  (cd "$WORK/docroot" && sha256sum file.bin big.bin small.bin > ../sums)
}

RELAY_PID=""
start_relay() {
  # `ip netns exec` itself, not the in_ns function: a backgrounded function is a
  # subshell, and $! would name it instead of the program.
  ip netns exec "$NS_WAN" node "$BUNDLE" --host $RELAY_IP --port 4433 --metrics-host 127.0.0.1 --metrics-port 9464 \
    >>"$WORK/relay.log" 2>&1 &
  RELAY_PID=$!
  wait_log "$WORK/relay.log" "UDP relay listening on $RELAY_IP:4433" 10 "relay start" || return 1
}
stop_relay() {
  [ -n "$RELAY_PID" ] && kill -TERM "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
  RELAY_PID=""
}

metric() { # name{labels} -> value from the relay's /metrics
  in_ns "$NS_WAN" node -e '
    fetch("http://127.0.0.1:9464/metrics").then(r => r.text()).then(t => {
      const line = t.split("\n").find(l => l.startsWith(process.argv[1] + " "));
      console.log(line ? line.split(" ")[1] : "0");
    }).catch(() => console.log("NaN"));' "$1"
}

wait_log() { # file pattern seconds what [count]
  local f=$1 pat=$2 secs=$3 what=$4 want=${5:-1} end=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$end" ]; do
    [ "$(grep -cF -- "$pat" "$f" 2>/dev/null || true)" -ge "$want" ] && return 0
    sleep 0.05
  done
  log "timeout after ${secs}s waiting for $what ($pat x$want in $f)"
  return 1
}

declare -A SIDECAR_PIDS
sidecar() { # name ns session mode local
  local name=$1 ns=$2 session=$3 mode=$4 addr=$5
  ip netns exec "$ns" node "$BUNDLE" peer --session "$session" --relay $RELAY_IP:4433 "--$mode" "$addr" \
    --keepalive-secs "$KEEPALIVE" >>"$WORK/$name.log" 2>&1 &
  SIDECAR_PIDS[$name]=$!
}
stop_sidecar() { local p=${SIDECAR_PIDS[$1]:-}; [ -n "$p" ] && kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; SIDECAR_PIDS[$1]=""; }

SERVER_PIDS=()
quic_server() { # ns ip port
  ip netns exec "$1" gtlsserver -q -d "$WORK/docroot" "$2" "$3" "$WORK/key.pem" "$WORK/cert.pem" >>"$WORK/server-$1.log" 2>&1 &
  SERVER_PIDS+=($!)
}
stop_servers() { for p in "${SERVER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; SERVER_PIDS=(); }

# quic_get ns host port file dir -> downloads https://localhost/file into dir; prints seconds taken
quic_get() {
  local ns=$1 host=$2 port=$3 file=$4 dir=$5 t0 t1
  rm -rf "$dir"; mkdir -p "$dir"
  t0=$(date +%s.%N)
  timeout 60 ip netns exec "$ns" gtlsclient -q --exit-on-all-streams-close --download "$dir" "$host" "$port" \
    "https://localhost:$port/$file" >>"$WORK/client.log" 2>&1 || { echo "fail"; return 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l 2>/dev/null || awk "BEGIN{print $t1 - $t0}"
}

checksum_ok() { # dir file
  local want got
  want=$(grep " $2\$" "$WORK/sums" | cut -d' ' -f1)
  got=$(sha256sum "$1/$2" 2>/dev/null | cut -d' ' -f1)
  [ -n "$got" ] && [ "$got" = "$want" ]
}

mbit() { awk "BEGIN{printf \"%.0f\", $1 * 8 / $2 / 1e6}"; } # bytes seconds

result() { # name ok detail
  if [ "$2" = 0 ]; then passed=$((passed + 1)); log "PASS $1: $3"; else failed=$((failed + 1)); log "FAIL $1: $3"; fi
}

# Starts the server-side and client-side sidecars for a session and waits until both are registered.
pair_up() { # session
  local s=$1
  : >"$WORK/sb.log"; : >"$WORK/sa.log"
  sidecar sb "$NS_B" "$s" forward 127.0.0.1:4443
  wait_log "$WORK/sb.log" "registered $s via $RELAY_IP:4433" 10 "server sidecar" || return 1
  sidecar sa "$NS_A" "$s" listen 127.0.0.1:4443
  wait_log "$WORK/sa.log" "registered $s via $RELAY_IP:4433" 10 "client sidecar" || return 1
}

# ---- scenarios -----------------------------------------------------------------

scenario_transfer() { # name nat-mode
  local name=$1 mode=$2 secs detail rc=1
  nat_rules "$NS_N1" "$mode"; nat_rules "$NS_N2" "$mode"
  if pair_up "$name-$$"; then
    local hs
    hs=$(quic_get "$NS_A" 127.0.0.1 4443 small.bin "$WORK/dl-small")
    secs=$(quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl")
    if [ "$secs" != fail ] && checksum_ok "$WORK/dl" file.bin && checksum_ok "$WORK/dl-small" small.bin; then
      rc=0
      detail="8 MiB in ${secs}s ($(mbit 8388608 "$secs") Mbit/s), checksum ok; 1 KiB request incl. handshake ${hs}s"
      FIGURES+=("$name: 8 MiB via relay $(mbit 8388608 "$secs") Mbit/s; handshake + 1 KiB ${hs}s")
    else
      detail="download failed or checksum mismatch (took $secs)"
    fi
  else
    detail="sidecars did not register"
  fi
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

public_port() { # of ha's flow to the relay, as nat1 mapped it
  in_ns "$NS_N1" conntrack -L -p udp --orig-src $A_IP --orig-dst $RELAY_IP 2>/dev/null | grep -o 'dport=[0-9]*' | tail -1 | cut -d= -f2
}

force_port_change() { # E2E-NOTES recipe, about 140 ms
  local old=$1
  in_ns "$NS_N1" iptables -I FORWARD 1 -s $A_IP -o wan0 -j DROP
  in_ns "$NS_N1" conntrack -D -p udp --orig-src $A_IP >/dev/null 2>&1
  in_ns "$NS_N1" conntrack -I -p udp -s $RELAY_IP -d $N1_WAN --sport 4433 --dport "$old" -t 120 >/dev/null 2>&1
  in_ns "$NS_N1" iptables -D FORWARD -s $A_IP -o wan0 -j DROP
}

scenario_rebind() { # name shared(0|1): NAT port change on ha's side in the middle of a download
  local name=$1 shared=$2 rc=1 detail old new secs
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  if [ "$shared" = 1 ]; then
    # hc, behind the same NAT, holds another session: the relay now sees two
    # peers on nat1's IP and must not rebind by data; recovery has to come from
    # the sidecar's own REG from the new port (explicit rebind).
    : >"$WORK/sc.log"; : >"$WORK/sb2.log"
    sidecar sb2 "$NS_B" "$name-c-$$" forward 127.0.0.1:4444
    sidecar sc "$NS_C" "$name-c-$$" listen 127.0.0.1:4444
    wait_log "$WORK/sc.log" "registered $name-c-$$" 10 "hc sidecar" || true
  fi
  if pair_up "$name-$$"; then
    rm -rf "$WORK/dl-big"; mkdir -p "$WORK/dl-big"
    local t0; t0=$(date +%s.%N)
    timeout 90 ip netns exec "$NS_A" gtlsclient -q --exit-on-all-streams-close --download "$WORK/dl-big" 127.0.0.1 4443 \
      https://localhost:4443/big.bin >>"$WORK/client.log" 2>&1 &
    local cpid=$!
    # wait for the transfer to be under way (4 MiB in), then move the NAT port
    local end=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$end" ] && [ "$(stat -c %s "$WORK/dl-big/big.bin" 2>/dev/null || echo 0)" -lt 4194304 ]; do sleep 0.02; done
    old=$(public_port)
    # Alone on its IP, either rebind may win the race (data: implicit; the
    # sidecar's REG after a second of silence: explicit). Shared: only explicit.
    rebinds() { local e i; e=$(metric 'quic_relay_rebinds_total{kind="explicit"}'); i=$(metric 'quic_relay_rebinds_total{kind="implicit"}'); [ "$shared" = 1 ] && i=0; echo $((e + i)); }
    local kind="implicit or explicit"; [ "$shared" = 1 ] && kind=explicit
    local before_rebinds; before_rebinds=$(rebinds)
    local at; at=$(stat -c %s "$WORK/dl-big/big.bin" 2>/dev/null || echo 0)
    force_port_change "$old"
    wait "$cpid"; local crc=$?
    secs=$(awk "BEGIN{print $(date +%s.%N) - $t0}")
    new=$(public_port)
    local after_rebinds; after_rebinds=$(rebinds)
    if [ "$crc" = 0 ] && checksum_ok "$WORK/dl-big" big.bin && [ -n "$old" ] && [ -n "$new" ] && [ "$old" != "$new" ] && [ "$after_rebinds" -gt "$before_rebinds" ]; then
      rc=0
      detail="public port $old -> $new at $((at / 1048576)) MiB of 48; download completed in ${secs}s, checksum ok; $kind rebinds +$((after_rebinds - before_rebinds))"
    else
      detail="client rc=$crc, port $old -> $new, $kind rebinds $before_rebinds -> $after_rebinds, checksum $(checksum_ok "$WORK/dl-big" big.bin && echo ok || echo bad)"
    fi
  else
    detail="sidecars did not register"
  fi
  stop_sidecar sa; stop_sidecar sb; stop_sidecar sc; stop_sidecar sb2
  result "$name" $rc "$detail"
}

scenario_shared_nat() { # ha and hc behind nat1, each in its own session with hb
  local name=$1 rc=1 detail
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  local s1="$name-a-$$" s2="$name-c-$$"
  : >"$WORK/sb2.log"; : >"$WORK/sc.log"
  if pair_up "$s1"; then
    sidecar sb2 "$NS_B" "$s2" forward 127.0.0.1:4444
    sidecar sc "$NS_C" "$s2" listen 127.0.0.1:4444
    if wait_log "$WORK/sb2.log" "registered $s2" 10 "sb2" && wait_log "$WORK/sc.log" "registered $s2" 10 "sc"; then
      local amb0; amb0=$(metric 'quic_relay_dropped_datagrams_total{reason="ambiguous_source"}')
      # a third program on hc, from a fresh port: data the relay cannot attribute
      in_ns "$NS_C" node -e '
        const s = require("dgram").createSocket("udp4");
        let n = 0; const go = () => { s.send(Buffer.alloc(1200, 0x41), 4433, process.argv[1]); if (++n < 50) setTimeout(go, 2); else s.close(); };
        go();' $RELAY_IP
      local amb1; amb1=$(metric 'quic_relay_dropped_datagrams_total{reason="ambiguous_source"}')
      # both downloads at once, each through its own session
      quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-a" >"$WORK/a.time" &
      local pa=$!
      quic_get "$NS_C" 127.0.0.1 4444 file.bin "$WORK/dl-c" >"$WORK/c.time" &
      local pc=$!
      wait $pa; local ra=$?; wait $pc; local rc2=$?
      if [ $ra = 0 ] && [ $rc2 = 0 ] && checksum_ok "$WORK/dl-a" file.bin && checksum_ok "$WORK/dl-c" file.bin && [ "$((amb1 - amb0))" -ge 45 ]; then
        rc=0
        detail="two hosts behind $N1_WAN: both 8 MiB downloads intact in parallel; $((amb1 - amb0)) stray datagrams from a third port dropped as ambiguous, no session taken"
      else
        detail="a=$ra c=$rc2, ambiguous drops +$((amb1 - amb0))"
      fi
    else
      detail="second session did not register"
    fi
  else
    detail="first session did not register"
  fi
  stop_sidecar sa; stop_sidecar sb; stop_sidecar sc; stop_sidecar sb2
  result "$name" $rc "$detail"
}

scenario_restart() { # relay restarted mid-session: sidecars re-register, a new connection works
  local name=$1 rc=1 detail s
  s="$name-$$"
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  if pair_up "$s"; then
    local first; first=$(quic_get "$NS_A" 127.0.0.1 4443 small.bin "$WORK/dl-r1")
    stop_relay
    # Down for longer than a keepalive and its answer: the sidecars notice,
    # fall back to registering with backoff, and say "registered" again. (A
    # restart shorter than that is silent: the next keepalive recreates the
    # session, and the relay cannot tell it from a registration.)
    sleep $((KEEPALIVE + 2))
    local t0=$SECONDS
    start_relay
    if wait_log "$WORK/sa.log" "registered $s via" 15 "client sidecar re-registration" 2 &&
       wait_log "$WORK/sb.log" "registered $s via" 15 "server sidecar re-registration" 2; then
      local again; again=$(quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-r2")
      if [ "$first" != fail ] && [ "$again" != fail ] && checksum_ok "$WORK/dl-r2" file.bin; then
        rc=0
        detail="relay down $((KEEPALIVE + 2))s; both sidecars re-registered within $((SECONDS - t0))s of its return; a new connection downloaded 8 MiB intact"
      else
        detail="download after restart failed ($again)"
      fi
    else
      detail="sidecars did not re-register"
    fi
  else
    detail="sidecars did not register"
  fi
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

scenario_direct() { # the same download without the relay, for comparison (server on the wan side)
  quic_server "$NS_WAN" $DIRECT_IP 4443
  sleep 0.3
  local secs; secs=$(quic_get "$NS_A" $DIRECT_IP 4443 file.bin "$WORK/dl-direct")
  local hs; hs=$(quic_get "$NS_A" $DIRECT_IP 4443 small.bin "$WORK/dl-direct-small")
  if [ "$secs" != fail ] && checksum_ok "$WORK/dl-direct" file.bin; then
    FIGURES+=("direct (no relay, through nat1 only): 8 MiB $(mbit 8388608 "$secs") Mbit/s; handshake + 1 KiB ${hs}s")
  fi
}

# ---- run -----------------------------------------------------------------------

log "building the lab ($P-*) in $WORK"
build_lab
make_files
start_relay || { log "relay did not start"; cat "$WORK/relay.log"; exit 1; }
quic_server "$NS_B" 127.0.0.1 4443
quic_server "$NS_B" 127.0.0.1 4444 # for hc's session

scenario_transfer cone-nat cone
scenario_transfer symmetric-nat symmetric
scenario_rebind nat-rebind-mid-transfer 0
scenario_rebind nat-rebind-shared-ip 1
scenario_shared_nat shared-nat-no-hijack
scenario_restart relay-restart
scenario_direct

stop_relay
stop_servers
log "figures:"
for f in "${FIGURES[@]}"; do log "  $f"; done
log "relay: $(grep -o 'stopped after.*' "$WORK/relay.log" | tail -1)"
if [ "$failed" -gt 0 ]; then
  for f in "$WORK"/*.log; do echo "--- $f"; tail -20 "$f"; done
fi
echo "e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
