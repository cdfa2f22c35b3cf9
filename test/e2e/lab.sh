#!/usr/bin/env bash
# End-to-end lab: real QUIC (ngtcp2's gtlsserver/gtlsclient, unmodified)
# through two quic-relay sidecars and the relay, across real NAT routers made
# of network namespaces. Nothing here is routed outside the namespaces it
# creates; addresses are documentation ranges and 10/8, inside the lab only.
#
#   wan (relay 203.0.113.10, fleet relays .11 and .12 when a scenario runs them, direct server 203.0.113.20)
#    |-- nat1 (WAN 198.51.100.1) --+-- ha 10.1.0.2 (QUIC client side)
#    |                             +-- hc 10.1.1.2 (another host behind the same NAT)
#    +-- nat2 (WAN 198.51.100.2) ----- hb 10.2.0.2 (QUIC server side)
#
# The relay also serves its WebSocket leg (SPEC 6) on TCP 443 with TLS from a
# certificate the lab makes; the stream scenarios block UDP at a router and,
# for the proxy one, run tinyproxy (Debian's) on ha's router.
#
# Needs root, gtlsserver/gtlsclient (ngtcp2-server/-client), iptables,
# conntrack, openssl, iproute2, tinyproxy. Prints "N passed, N failed" and exits non-zero
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
for tool in gtlsserver gtlsclient iptables conntrack openssl ip node sha256sum tinyproxy ss nginx; do
  if ! command -v "$tool" >/dev/null; then
    echo "e2e lab skipped: $tool not installed (apt-get install ngtcp2-server ngtcp2-client iptables conntrack openssl iproute2 tinyproxy nginx-light)"
    exit 0
  fi
done
[ -f "$BUNDLE" ] || (cd "$root" && node scripts/build.mjs >/dev/null)

P="qr$$"                     # namespace prefix: parallel runs cannot clash
NS_WAN=$P-wan NS_N1=$P-nat1 NS_N2=$P-nat2 NS_A=$P-ha NS_B=$P-hb NS_C=$P-hc
ALL_NS="$NS_A $NS_B $NS_C $NS_N1 $NS_N2 $NS_WAN"
RELAY_IP=203.0.113.10 RELAY2_IP=203.0.113.11 RELAY3_IP=203.0.113.12 DIRECT_IP=203.0.113.20 N1_WAN=198.51.100.1 N2_WAN=198.51.100.2
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
  in_ns "$NS_WAN" ip addr add $RELAY2_IP/32 dev lo
  in_ns "$NS_WAN" ip addr add $RELAY3_IP/32 dev lo
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
    in_ns "$nat" ip route add $RELAY2_IP/32 dev wan0
    in_ns "$nat" ip route add $RELAY3_IP/32 dev wan0
    # the other router's public address, through the wan (which answers ARP for the relay's IP)
    in_ns "$nat" ip route add 198.51.100.0/24 via $RELAY_IP dev wan0 onlink
    in_ns "$nat" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$nat" iptables -P FORWARD DROP
    in_ns "$nat" iptables -A FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    in_ns "$nat" iptables -A FORWARD -o wan0 -j ACCEPT
    # As home routers do: drop unsolicited inbound traffic to the router itself.
    # Without it a first punch becomes a conntrack flow to the router and
    # poisons the mapping the other side's punch needs (E2E-NOTES).
    in_ns "$nat" iptables -I INPUT 1 -i wan0 -m conntrack --ctstate NEW -j DROP
  done
  # The wan forwards between the two routers (the direct path), and counts
  # every datagram from one NAT's public address to the other's.
  in_ns "$NS_WAN" sysctl -qw net.ipv4.ip_forward=1
  in_ns "$NS_WAN" iptables -N between
  in_ns "$NS_WAN" iptables -A between -s $N1_WAN -d $N2_WAN
  in_ns "$NS_WAN" iptables -A between -s $N2_WAN -d $N1_WAN
  in_ns "$NS_WAN" iptables -A FORWARD -j between
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
  # SPEC 6.1: the relay's own certificate for wss, naming its IP; sidecars trust it through NODE_EXTRA_CA_CERTS.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/relay-key.pem" \
    -out "$WORK/relay-cert.pem" -days 1 -subj /CN=relay -addext subjectAltName=IP:$RELAY_IP >/dev/null 2>&1
  # ...and one for the relay behind nginx (relay 2's IP); the sidecars trust both.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/relay2-key.pem" \
    -out "$WORK/relay2-cert.pem" -days 1 -subj /CN=relay2 -addext subjectAltName=IP:$RELAY2_IP >/dev/null 2>&1
  cat "$WORK/relay-cert.pem" "$WORK/relay2-cert.pem" > "$WORK/relay-cas.pem"
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
    --ws-port 443 --tls-cert "$WORK/relay-cert.pem" --tls-key "$WORK/relay-key.pem" >>"$WORK/relay.log" 2>&1 &
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
    sleep 0.01
  done
  log "timeout after ${secs}s waiting for $what ($pat x$want in $f)"
  return 1
}

declare -A SIDECAR_PIDS
SIDECAR_ENV=()               # e.g. (QUIC_RELAY_ONLY=true) for the next sidecars
SIDECAR_RELAY=""             # --relay for the next sidecars (a fleet: a comma-separated list); default the one relay
sidecar() { # name ns session mode local [keepalive]
  local name=$1 ns=$2 session=$3 mode=$4 addr=$5 keepalive=${6:-$KEEPALIVE}
  ip netns exec "$ns" env "${SIDECAR_ENV[@]}" node "$BUNDLE" peer --session "$session" --relay "${SIDECAR_RELAY:-$RELAY_IP:4433}" "--$mode" "$addr" \
    --keepalive-secs "$keepalive" >>"$WORK/$name.log" 2>&1 &
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
# (QLOG=dir: ngtcp2 writes its qlog there, for rtt_quantiles)
quic_get() {
  local ns=$1 host=$2 port=$3 file=$4 dir=$5 t0 t1 qlog=()
  rm -rf "$dir"; mkdir -p "$dir"
  [ -n "${QLOG:-}" ] && { rm -rf "$QLOG"; mkdir -p "$QLOG"; qlog=(--qlog-dir "$QLOG"); }
  t0=$(date +%s.%N)
  timeout 60 ip netns exec "$ns" gtlsclient -q --exit-on-all-streams-close "${qlog[@]}" --download "$dir" "$host" "$port" \
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

# Starts the server-side and client-side sidecars for a session and waits
# until each has heard the other (through the relay or directly). Relay-only
# sidecars send nothing of their own, so they hear each other only once QUIC
# talks: for them, registration is all there is to wait for.
pair_up() { # session [keepalive]
  local s=$1 k=${2:-$KEEPALIVE}
  : >"$WORK/sb.log"; : >"$WORK/sa.log"
  local via="registered $s via ${SIDECAR_RELAY:+}"; [ -z "$SIDECAR_RELAY" ] && via="registered $s via $RELAY_IP:4433"
  sidecar sb "$NS_B" "$s" forward 127.0.0.1:4443 "$k"
  wait_log "$WORK/sb.log" "$via" 10 "server sidecar" || return 1
  sidecar sa "$NS_A" "$s" listen 127.0.0.1:4443 "$k"
  wait_log "$WORK/sa.log" "$via" 10 "client sidecar" || return 1
  PAIRED_AT=$(date +%s.%N)
  [ "${SIDECAR_ENV[*]:-}" = QUIC_RELAY_ONLY=true ] && return 0
  [ -n "${PAIR_QUIET:-}" ] && return 0 # a WebSocket side sends nothing of its own either
  wait_log "$WORK/sa.log" "peer $s reachable via" 10 "client sidecar hearing the server's" || return 1
  wait_log "$WORK/sb.log" "peer $s reachable via" 10 "server sidecar hearing the client's" || return 1
}

now() { date +%s.%N; }
elapsed_ms() { awk "BEGIN{printf \"%.0f\", ($(now) - $1) * 1000}"; }
between_count() { in_ns "$NS_WAN" iptables -L between -v -x -n | awk 'NR > 2 { n += $1 } END { print n + 0 }'; }
relay_bytes() { metric quic_relay_forwarded_bytes_total; }
share() { awk "BEGIN{printf \"%.1f\", 100 * $1 / $2}"; } # part whole -> percent
# both sidecars' logs show a line (count times)
wait_both() { # pattern seconds what [count]
  wait_log "$WORK/sa.log" "$1" "$2" "client sidecar: $3" "${4:-1}" && wait_log "$WORK/sb.log" "$1" "$2" "server sidecar: $3" "${4:-1}"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

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
      local path_now; path_now=$(grep -o '^path [a-z]*' "$WORK/sa.log" | tail -1)
      detail="8 MiB in ${secs}s ($(mbit 8388608 "$secs") Mbit/s), checksum ok; 1 KiB request incl. handshake ${hs}s; ${path_now:-no path line}"
      FIGURES+=("$name: 8 MiB $(mbit 8388608 "$secs") Mbit/s (${path_now:-?}); handshake + 1 KiB ${hs}s")
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
    # While direct, the relay hears from ha's new port only at its next
    # keepalive, which may come after the download ended: wait for it.
    local until_t=$((SECONDS + KEEPALIVE + 3)) after_rebinds
    while :; do
      new=$(public_port); after_rebinds=$(rebinds)
      { [ -n "$new" ] && [ "$new" != "$old" ] && [ "$after_rebinds" -gt "$before_rebinds" ]; } || [ "$SECONDS" -ge "$until_t" ] && break
      sleep 0.1
    done
    local path_now; path_now=$(grep -o '^path [a-z]*' "$WORK/sa.log" | tail -1)
    if [ "$crc" = 0 ] && checksum_ok "$WORK/dl-big" big.bin && [ -n "$old" ] && [ -n "$new" ] && [ "$old" != "$new" ] && [ "$after_rebinds" -gt "$before_rebinds" ]; then
      rc=0
      detail="public port $old -> $new at $((at / 1048576)) MiB of 48 (${path_now:-no path line}); download completed in ${secs}s, checksum ok; $kind rebinds +$((after_rebinds - before_rebinds))"
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

scenario_nat_change_before_partner() { # ha's NAT port changes while it waits alone; hb must still get in
  local name=$1 rc=1 detail s="$1-$$" old new
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  : >"$WORK/sa.log"; : >"$WORK/sb.log"
  sidecar sa "$NS_A" "$s" listen 127.0.0.1:4443
  if wait_log "$WORK/sa.log" "registered $s via" 10 "lone sidecar"; then
    old=$(public_port)
    force_port_change "$old"
    # ha's next keepalive comes from a new port and joins its own session (the
    # relay cannot tell it from a second host behind the same NAT).
    local until_t=$((SECONDS + KEEPALIVE + 5))
    while new=$(public_port); { [ -z "$new" ] || [ "$new" = "$old" ] || ! grep -q "session $s paired" "$WORK/relay.log"; } && [ "$SECONDS" -lt "$until_t" ]; do sleep 0.05; done
    local t0; t0=$(now)
    sidecar sb "$NS_B" "$s" forward 127.0.0.1:4443
    if [ "$new" != "$old" ] && wait_log "$WORK/sb.log" "registered $s via" 10 "partner sidecar" && wait_log "$WORK/sa.log" "peer $s reachable via" 10 "lone sidecar hearing its partner"; then
      local met; met=$(elapsed_ms "$t0")
      local secs; secs=$(quic_get "$NS_A" 127.0.0.1 4443 small.bin "$WORK/dl-small")
      if [ "$secs" != fail ] && checksum_ok "$WORK/dl-small" small.bin && grep -q "took the slot of" "$WORK/relay.log"; then
        rc=0
        detail="public port $old -> $new before the partner came; the partner registered and met ha ${met} ms after it started (the stale slot was taken, not ERR:FULL); a request went through"
      else
        detail="download $secs, or the relay did not log the stale slot's replacement"
      fi
    else
      detail="port $old -> ${new:-?}; the partner did not get in: $(grep -m1 -o 'ERR:[A-Z]*\|refused.*' "$WORK/sb.log" || echo 'no ACK')"
    fi
  else
    detail="the lone sidecar did not register"
  fi
  stop_sidecar sa; stop_sidecar sb
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

# ---- hole punching (SPEC 5.3-5.5) ------------------------------------------------

# cone x cone: time from both registered to direct on both sides, over several
# pairings; then a download, and the relay's share of its bytes.
scenario_punch_cone() {
  local name=$1 rc=1 detail runs=${E2E_PUNCH_RUNS:-5} i ms times=()
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  for i in $(seq 1 "$runs"); do
    if pair_up "$name-$i-$$" && wait_both "path direct" 10 "direct path"; then
      times+=("$(elapsed_ms "$PAIRED_AT")")
    else
      times+=(fail)
    fi
    [ "$i" -lt "$runs" ] && { stop_sidecar sa; stop_sidecar sb; }
  done
  local between0 bytes0 secs between1 bytes1
  between0=$(between_count); bytes0=$(relay_bytes)
  secs=$(quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-punch")
  between1=$(between_count); bytes1=$(relay_bytes)
  local relayed=$((bytes1 - bytes0)) pct; pct=$(share "$relayed" 8388608)
  local sorted; sorted=$(printf '%s\n' "${times[@]}" | grep -v fail | sort -n | tr '\n' ' ')
  if ! printf '%s\n' "${times[@]}" | grep -q fail && [ "$secs" != fail ] && checksum_ok "$WORK/dl-punch" file.bin &&
     awk "BEGIN{exit !($pct < 10)}" && [ $((between1 - between0)) -gt 1000 ]; then
    rc=0
    local med max; med=$(printf '%s\n' "${times[@]}" | median); max=$(printf '%s\n' "${times[@]}" | sort -n | tail -1)
    detail="direct after ${sorted}ms (median $med, max $max) from the second registration; 8 MiB in ${secs}s ($(mbit 8388608 "$secs") Mbit/s), relay carried $relayed bytes ($pct%), $((between1 - between0)) datagrams NAT to NAT"
    FIGURES+=("cone x cone: direct in median ${med} ms, max ${max} ms of $runs; 8 MiB direct $(mbit 8388608 "$secs") Mbit/s; relay share $pct%")
  else
    detail="times: ${times[*]}; download $secs; relay share $pct%; NAT to NAT $((between1 - between0))"
  fi
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

# symmetric x cone: the punch cannot work; the relay carries the download.
scenario_punch_symmetric() {
  local name=$1 rc=1 detail
  nat_rules "$NS_N1" symmetric; nat_rules "$NS_N2" cone
  if pair_up "$name-$$" && wait_both "path relay" 10 "the failed attempt reported"; then
    local bytes0 secs bytes1 reason
    bytes0=$(relay_bytes)
    secs=$(quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-sym")
    bytes1=$(relay_bytes)
    reason=$(grep -m1 -o 'path relay.*' "$WORK/sa.log")
    if [ "$secs" != fail ] && checksum_ok "$WORK/dl-sym" file.bin && ! grep -q "path direct" "$WORK/sa.log" "$WORK/sb.log"; then
      rc=0
      detail="'$reason'; 8 MiB in ${secs}s ($(mbit 8388608 "$secs") Mbit/s), relay share $(share $((bytes1 - bytes0)) 8388608)%"
      FIGURES+=("symmetric x cone: relay; 8 MiB $(mbit 8388608 "$secs") Mbit/s; relay share $(share $((bytes1 - bytes0)) 8388608)%")
    else
      detail="download $secs, or a direct path was claimed"
    fi
  else
    detail="sidecars did not pair, or no path line"
  fi
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

# QUIC_RELAY_ONLY=true on cone x cone: no datagram between the NATs' public addresses.
scenario_relay_only() {
  local name=$1 rc=1 detail
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  SIDECAR_ENV=(QUIC_RELAY_ONLY=true)
  local between0; between0=$(between_count)
  if pair_up "$name-$$" && wait_both "path relay relay-only" 5 "relay-only line"; then
    local bytes0 secs bytes1 between1
    bytes0=$(relay_bytes)
    secs=$(quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-ro")
    bytes1=$(relay_bytes); between1=$(between_count)
    if [ "$secs" != fail ] && checksum_ok "$WORK/dl-ro" file.bin && [ "$between1" = "$between0" ]; then
      rc=0
      detail="8 MiB in ${secs}s ($(mbit 8388608 "$secs") Mbit/s) through the relay ($(share $((bytes1 - bytes0)) 8388608)% of its bytes), 0 datagrams between $N1_WAN and $N2_WAN"
      FIGURES+=("relay-only on cone x cone: 8 MiB $(mbit 8388608 "$secs") Mbit/s; relay share $(share $((bytes1 - bytes0)) 8388608)%; NAT to NAT 0")
    else
      detail="download $secs; NAT to NAT datagrams $((between1 - between0))"
    fi
  else
    detail="sidecars did not pair"
  fi
  SIDECAR_ENV=()
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

# ---- the WebSocket leg (SPEC 6): UDP blocked at a router -----------------------

# p50 and p99 of QUIC's own RTT samples (qlog recovery:metrics_updated latest_rtt, ms) in a qlog dir
rtt_quantiles() {
  node -e '
    const fs = require("fs"); const dir = process.argv[1]; const v = [];
    for (const f of fs.readdirSync(dir)) for (const m of fs.readFileSync(dir + "/" + f, "utf8").matchAll(/"latest_rtt":([0-9.]+)/g)) v.push(Number(m[1]));
    v.sort((a, b) => a - b);
    const q = (p) => v.length ? v[Math.min(v.length - 1, Math.ceil(p * v.length) - 1)] : NaN;
    console.log(`rtt p50 ${q(0.5).toFixed(2)} ms p99 ${q(0.99).toFixed(2)} ms (${v.length} samples)`);' "$1"
}
block_udp() { in_ns "$1" iptables -I FORWARD 1 -o wan0 -p udp -j DROP; }  # the router passes no UDP out
unblock_udp() { in_ns "$1" iptables -D FORWARD -o wan0 -p udp -j DROP; }
PROXY_PID=""
start_proxy() { # tinyproxy on ha's router; ha itself may reach nothing else
  cat >"$WORK/tinyproxy.conf" <<CONF
Port 8888
Listen 10.1.0.1
Timeout 600
Allow 10.1.0.0/24
ConnectPort 443
MaxClients 50
LogLevel Connect
LogFile "$WORK/tinyproxy.log"
CONF
  : >"$WORK/tinyproxy.log"
  ip netns exec "$NS_N1" tinyproxy -d -c "$WORK/tinyproxy.conf" >>"$WORK/tinyproxy.out" 2>&1 &
  PROXY_PID=$!
  in_ns "$NS_N1" iptables -I FORWARD 1 -i lan0 -j DROP # ha: nothing forwarded, only the proxy on the router
  local end=$((SECONDS + 5))
  while [ $SECONDS -lt $end ]; do in_ns "$NS_N1" ss -ltn | grep -q '10.1.0.1:8888' && return 0; sleep 0.05; done
  log "tinyproxy did not start: $(tail -3 "$WORK/tinyproxy.out" "$WORK/tinyproxy.log" 2>/dev/null | tr '\n' ' ')"; return 1
}
stop_proxy() {
  in_ns "$NS_N1" iptables -D FORWARD -i lan0 -j DROP 2>/dev/null
  [ -n "$PROXY_PID" ] && kill -TERM "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null; PROXY_PID=""
}

# SPEC 6.4: side A's router passes no UDP (both: neither router does; proxy: A reaches
# only an HTTP CONNECT proxy; reset: A's connection is reset in the middle of a
# download). A falls back to wss by itself; the download completes.
scenario_stream() { # name a|both|proxy|reset
  local name=$1 how=$2 rc=1 detail="" secs file=file.bin bytes=8388608 ws0
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  block_udp "$NS_N1"; [ "$how" = both ] && block_udp "$NS_N2"
  SIDECAR_ENV=(NODE_EXTRA_CA_CERTS="$WORK/relay-cas.pem" QUIC_RELAY_WS_PORT=443)
  PAIR_QUIET=1
  if [ "$how" = proxy ]; then start_proxy || detail="no proxy"; SIDECAR_ENV+=(HTTPS_PROXY=http://10.1.0.1:8888); fi
  [ "$how" = reset ] && { file=big.bin; bytes=$((48 * 1024 * 1024)); }
  ws0=$(metric quic_relay_ws_connections_accepted_total)
  if [ -z "$detail" ] && pair_up "$name-$$" && wait_log "$WORK/sa.log" "path relay-ws" 10 "A on the WebSocket leg"; then
    local regs_a0 cut=""; regs_a0=$(grep -c "registered $name-$$ via" "$WORK/sa.log")
    if [ "$how" = reset ]; then
      # One TCP reset of A's connection to the relay, 0.4 s into the download.
      ( sleep 0.4; in_ns "$NS_A" ss -K dst $RELAY_IP dport = :443 >/dev/null 2>&1 ) & cut=$!
    fi
    secs=$(QLOG="$WORK/qlog-$name" quic_get "$NS_A" 127.0.0.1 4443 $file "$WORK/dl-$name")
    [ -n "$cut" ] && wait "$cut"
    local rtt; rtt=$(rtt_quantiles "$WORK/qlog-$name" 2>/dev/null)
    local ws1 regs_a1 b_ws=0 proxied=0
    ws1=$(metric quic_relay_ws_connections_accepted_total); regs_a1=$(grep -c "registered $name-$$ via" "$WORK/sa.log")
    grep -q "path relay-ws" "$WORK/sb.log" && b_ws=1
    grep -q "CONNECT.*$RELAY_IP:443" "$WORK/tinyproxy.log" 2>/dev/null && proxied=1
    local want_b_ws=0; [ "$how" = both ] && want_b_ws=1
    if [ "$secs" = fail ] || ! checksum_ok "$WORK/dl-$name" $file; then
      detail="download failed or checksum mismatch ($secs)"
    elif [ "$b_ws" != "$want_b_ws" ]; then
      detail="B's transport: relay-ws=$b_ws, expected $want_b_ws"
    elif [ "$how" = proxy ] && [ "$proxied" != 1 ]; then
      detail="tinyproxy saw no CONNECT to $RELAY_IP:443"
    elif [ "$how" = reset ] && [ "$regs_a1" -le "$regs_a0" ]; then
      detail="A did not register again after the reset"
    else
      rc=0
      detail="$((bytes / 1048576)) MiB in ${secs}s ($(mbit $bytes "$secs") Mbit/s), checksum ok; $rtt; $((ws1 - ws0)) WebSocket connections"
      [ "$how" = reset ] && detail="$detail; A registered again after the reset"
      [ "$how" = proxy ] && detail="$detail; through tinyproxy's CONNECT"
      FIGURES+=("$name: $((bytes / 1048576)) MiB $(mbit $bytes "$secs") Mbit/s; $rtt")
    fi
  else
    [ -z "$detail" ] && detail="sidecars did not pair, or A never took the WebSocket leg"
  fi
  [ "$how" = proxy ] && stop_proxy
  unblock_udp "$NS_N1"; [ "$how" = both ] && unblock_udp "$NS_N2"
  SIDECAR_ENV=(); PAIR_QUIET=""
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

# The operator's other way to serve 443: nginx terminates TLS (the repository's
# scripts/deploy/nginx-quic-relay.conf, as it is, with names filled in) in front
# of a relay whose WebSocket leg is plain ws on 127.0.0.1:8080 and trusts
# nginx's X-Forwarded-For. A's router passes no UDP; the download completes and
# the relay sees A's address, not nginx's.
scenario_nginx() {
  local name=$1 rc=1 detail secs nginx_pid relay_pid log="$WORK/relay-nginx.log"
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  : >"$log"
  ip netns exec "$NS_WAN" node "$BUNDLE" --host $RELAY2_IP --port 4433 --ws-port 8080 --ws-host 127.0.0.1 --ws-trusted-proxies 127.0.0.1 >>"$log" 2>&1 &
  relay_pid=$!
  sed -e "s|RELAY_NAME|$RELAY2_IP|; s|CERT;|$WORK/relay2-cert.pem;|; s|KEY;|$WORK/relay2-key.pem;|; s|listen 443 ssl;|listen $RELAY2_IP:443 ssl;|" \
    "$root/scripts/deploy/nginx-quic-relay.conf" >"$WORK/nginx-quic-relay.conf"
  cat >"$WORK/nginx.conf" <<CONF
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events {}
http { access_log off; include $WORK/nginx-quic-relay.conf; }
CONF
  ip netns exec "$NS_WAN" nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" >>"$WORK/nginx.out" 2>&1 &
  nginx_pid=$!
  block_udp "$NS_N1"
  SIDECAR_ENV=(NODE_EXTRA_CA_CERTS="$WORK/relay-cas.pem" QUIC_RELAY_WS_PORT=443); SIDECAR_RELAY="$RELAY2_IP:4433"; PAIR_QUIET=1
  if wait_log "$log" "WebSocket leg (ws, no TLS) listening on 127.0.0.1:8080" 10 "relay behind nginx" && pair_up "$name-$$" \
    && wait_log "$WORK/sa.log" "path relay-ws" 10 "A on the WebSocket leg"; then
    secs=$(quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-$name")
    if [ "$secs" != fail ] && checksum_ok "$WORK/dl-$name" file.bin && grep -q "ws $N1_WAN" "$log"; then
      rc=0; detail="8 MiB in ${secs}s ($(mbit 8388608 "$secs") Mbit/s) through nginx's TLS; the relay saw A as $N1_WAN (X-Forwarded-For), not as nginx"
    else
      detail="download $secs; relay log: $(grep -o 'paired: .*' "$log" | head -1)"
    fi
  else
    detail="no pairing through nginx: $(tail -2 "$WORK/nginx-error.log" 2>/dev/null | tr '\n' ' ')"
  fi
  unblock_udp "$NS_N1"
  SIDECAR_ENV=(); SIDECAR_RELAY=""; PAIR_QUIET=""
  stop_sidecar sa; stop_sidecar sb
  kill -TERM "$nginx_pid" "$relay_pid" 2>/dev/null; wait "$nginx_pid" "$relay_pid" 2>/dev/null
  result "$name" $rc "$detail"
}

# The same download relay-only over UDP on both sides, with QUIC's RTT: the baseline for the WebSocket figures.
scenario_udp_baseline() {
  local name=$1 rc=1 detail secs
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  SIDECAR_ENV=(QUIC_RELAY_ONLY=true)
  if pair_up "$name-$$"; then
    secs=$(QLOG="$WORK/qlog-$name" quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-$name")
    if [ "$secs" != fail ] && checksum_ok "$WORK/dl-$name" file.bin; then
      local rtt; rtt=$(rtt_quantiles "$WORK/qlog-$name")
      rc=0; detail="8 MiB in ${secs}s ($(mbit 8388608 "$secs") Mbit/s) UDP-UDP through the relay; $rtt"
      FIGURES+=("$name: 8 MiB $(mbit 8388608 "$secs") Mbit/s; $rtt")
    else
      detail="download failed ($secs)"
    fi
  else
    detail="sidecars did not pair"
  fi
  SIDECAR_ENV=()
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

# ---- a fleet (SPEC 5.7): relays 2 and 3 beside the main one ----------------------

declare -A FLEET_PIDS
start_fleet_relay() { # ip
  : >"$WORK/relay-$1.log"
  ip netns exec "$NS_WAN" node "$BUNDLE" --host "$1" --port 4433 >>"$WORK/relay-$1.log" 2>&1 &
  FLEET_PIDS[$1]=$!
  wait_log "$WORK/relay-$1.log" "UDP relay listening on $1:4433" 10 "relay $1 start"
}
stop_fleet_relay() { local p=${FLEET_PIDS[$1]:-}; [ -n "$p" ] && kill -"${2:-TERM}" "$p" 2>/dev/null && wait "$p" 2>/dev/null; FLEET_PIDS[$1]=""; }
# The fleet's relays for a session, in the order both sides try them.
ranked() { # session ip...
  local s=$1; shift
  node -e 'const { rankRelays } = require(process.argv[1]); console.log(rankRelays(process.argv.slice(3).map((h) => ({ host: h, port: 4433 })), process.argv[2]).map((r) => r.host).join(" "))' "$root/dist/index.js" "$s" "$@"
}
relay_log_of() { [ "$1" = "$RELAY_IP" ] && echo "$WORK/relay.log" || echo "$WORK/relay-$1.log"; }
fleet_list() { local out="" ip; for ip in "$@"; do out="$out${out:+,}$ip:4433"; done; echo "$out"; }
moves() { grep -h 'now carries' "$WORK/sa.log" "$WORK/sb.log" 2>/dev/null | tr '\n' ';' | head -c 300; }

scenario_fleet_healthy() { # every relay up: both meet on the first-ranked one, and nobody moves
  local name=$1 rc=1 detail s="$1-$$" order first
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  start_fleet_relay $RELAY2_IP && start_fleet_relay $RELAY3_IP || { result "$name" 1 "fleet relays did not start"; return; }
  read -r -a order <<<"$(ranked "$s" $RELAY_IP $RELAY2_IP $RELAY3_IP)"; first=${order[0]}
  SIDECAR_RELAY=$(fleet_list $RELAY_IP $RELAY2_IP $RELAY3_IP)
  if pair_up "$s"; then
    local secs; secs=$(quic_get "$NS_A" 127.0.0.1 4443 small.bin "$WORK/dl-small")
    if [ "$secs" != fail ] && grep -q "session $s paired" "$(relay_log_of "$first")" && [ -z "$(moves)" ]; then
      rc=0; detail="three relays up: both sides registered on the first-ranked ($first) and met there; no relay change; a request went through"
    else
      detail="download $secs; paired on $first: $(grep -c "session $s paired" "$(relay_log_of "$first")"); moves: $(moves)"
    fi
  else
    detail="the sidecars did not pair"
  fi
  SIDECAR_RELAY=""
  stop_sidecar sa; stop_sidecar sb; stop_fleet_relay $RELAY2_IP; stop_fleet_relay $RELAY3_IP
  result "$name" $rc "$detail"
}

scenario_fleet_unreachable_from_b() { # hb cannot reach the first-ranked relay: the pair meets on the next
  local name=$1 rc=1 detail s="$1-$$" order first
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  start_fleet_relay $RELAY2_IP || { result "$name" 1 "fleet relay did not start"; return; }
  read -r -a order <<<"$(ranked "$s" $RELAY_IP $RELAY2_IP)"; first=${order[0]}
  in_ns "$NS_N2" iptables -I FORWARD 1 -d "$first" -j DROP
  SIDECAR_RELAY=$(fleet_list $RELAY_IP $RELAY2_IP)
  : >"$WORK/sa.log"; : >"$WORK/sb.log"
  local t0; t0=$(now)
  sidecar sb "$NS_B" "$s" forward 127.0.0.1:4443
  sidecar sa "$NS_A" "$s" listen 127.0.0.1:4443
  if wait_log "$WORK/sa.log" "peer $s reachable via" 20 "ha hearing hb" && wait_log "$WORK/sb.log" "peer $s reachable via" 20 "hb hearing ha"; then
    local met; met=$(elapsed_ms "$t0")
    local secs; secs=$(quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-fleet")
    if [ "$secs" != fail ] && checksum_ok "$WORK/dl-fleet" file.bin; then
      rc=0; detail="hb cut off from $first (ranked first): the two met ${met} ms after both started; 8 MiB intact in ${secs}s; moves: $(moves)"
      FIGURES+=("fleet, first relay unreachable from one side: met after ${met} ms")
    else
      detail="met after ${met} ms, but the download $secs"
    fi
  else
    detail="the two never met: $(grep -h 'now carries\|registered' "$WORK/sa.log" "$WORK/sb.log" | tr '\n' ';' | head -c 400)"
  fi
  in_ns "$NS_N2" iptables -D FORWARD -d "$first" -j DROP
  SIDECAR_RELAY=""
  stop_sidecar sa; stop_sidecar sb; stop_fleet_relay $RELAY2_IP
  result "$name" $rc "$detail"
}

scenario_fleet_draining() { # the first-ranked relay drains (SIGUSR2): a new session lands on the next one at once
  local name=$1 rc=1 detail s="$1-$$" order first
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  read -r -a order <<<"$(ranked "$s" $RELAY2_IP $RELAY3_IP)"; first=${order[0]}
  start_fleet_relay $RELAY2_IP && start_fleet_relay $RELAY3_IP || { result "$name" 1 "fleet relays did not start"; return; }
  # one session held on the draining relay, so that it drains rather than exits
  in_ns "$NS_WAN" node -e 'const s = require("dgram").createSocket("udp4"); s.send("REG:held-during-drain\n", 4433, process.argv[1], () => setTimeout(() => s.close(), 200));' "$first"
  wait_log "$(relay_log_of "$first")" "session held-during-drain created" 5 "held session"
  kill -USR2 "${FLEET_PIDS[$first]}"
  wait_log "$(relay_log_of "$first")" "draining" 5 "drain start"
  SIDECAR_RELAY=$(fleet_list $RELAY2_IP $RELAY3_IP)
  local t0; t0=$(now)
  if pair_up "$s"; then
    local met; met=$(elapsed_ms "$t0")
    local secs; secs=$(quic_get "$NS_A" 127.0.0.1 4443 small.bin "$WORK/dl-small")
    if [ "$secs" != fail ] && grep -q "session $s paired" "$(relay_log_of "${order[1]}")" && grep -q "(ERR:BUSY)" "$WORK/sa.log" && grep -q "(ERR:BUSY)" "$WORK/sb.log"; then
      rc=0; detail="$first draining: each side got ERR:BUSY and registered on ${order[1]} at once; both registered and heard each other ${met} ms after the first sidecar started; a request went through"
    else
      detail="download $secs; paired on ${order[1]}: $(grep -c "session $s paired" "$(relay_log_of "${order[1]}")"); moves: $(moves)"
    fi
  else
    detail="the sidecars did not pair: $(moves)"
  fi
  SIDECAR_RELAY=""
  stop_sidecar sa; stop_sidecar sb; stop_fleet_relay $RELAY2_IP KILL; stop_fleet_relay $RELAY3_IP KILL
  result "$name" $rc "$detail"
}

scenario_fleet_relay_dies() { # the relay carrying a download is killed in the middle of it: the download completes through the next
  local name=$1 rc=1 detail s="$1-$$" order first
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  read -r -a order <<<"$(ranked "$s" $RELAY2_IP $RELAY3_IP)"; first=${order[0]}
  start_fleet_relay $RELAY2_IP && start_fleet_relay $RELAY3_IP || { result "$name" 1 "fleet relays did not start"; return; }
  SIDECAR_RELAY=$(fleet_list $RELAY2_IP $RELAY3_IP)
  SIDECAR_ENV=(QUIC_RELAY_ONLY=true) # the relay path, where a relay's death shows
  if pair_up "$s"; then
    rm -rf "$WORK/dl-die"; mkdir -p "$WORK/dl-die"
    local t0; t0=$(now)
    timeout 90 ip netns exec "$NS_A" gtlsclient -q --exit-on-all-streams-close --download "$WORK/dl-die" 127.0.0.1 4443 \
      https://localhost:4443/big.bin >>"$WORK/client.log" 2>&1 &
    local cpid=$!
    local end=$((SECONDS + 30)) size=0
    while [ "$SECONDS" -lt "$end" ] && [ "$size" -lt 4194304 ]; do size=$(stat -c %s "$WORK/dl-die/big.bin" 2>/dev/null || echo 0); sleep 0.01; done
    stop_fleet_relay "$first" KILL
    local killed_at at; killed_at=$(now); at=$(stat -c %s "$WORK/dl-die/big.bin" 2>/dev/null || echo 0)
    # the stall: from the kill until the file grows again
    local grown_at="" deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
      if [ "$(stat -c %s "$WORK/dl-die/big.bin" 2>/dev/null || echo 0)" -gt $((at + 65536)) ]; then grown_at=$(now); break; fi
      sleep 0.01
    done
    wait "$cpid"; local crc=$?
    local stall="never"; [ -n "$grown_at" ] && stall=$(awk "BEGIN{printf \"%.0f\", ($grown_at - $killed_at) * 1000}")
    if [ "$crc" = 0 ] && checksum_ok "$WORK/dl-die" big.bin && grep -q "session $s paired" "$(relay_log_of "${order[1]}")"; then
      rc=0; detail="$first killed at $((at / 1048576)) MiB of 48: both sides moved to ${order[1]}; data flowing again ${stall} ms after the kill; download intact in $(awk "BEGIN{printf \"%.1f\", $(now) - $t0}") s"
      FIGURES+=("fleet, relay killed mid-download (relay path): stall ${stall} ms")
    else
      detail="client rc=$crc, stall $stall ms, moves: $(moves)"
    fi
  else
    detail="the sidecars did not pair"
  fi
  SIDECAR_ENV=(); SIDECAR_RELAY=""
  stop_sidecar sa; stop_sidecar sb; stop_fleet_relay $RELAY2_IP; stop_fleet_relay $RELAY3_IP
  result "$name" $rc "$detail"
}

block_direct() { in_ns "$NS_WAN" iptables -I FORWARD 1 -s $N1_WAN -d $N2_WAN -j DROP; in_ns "$NS_WAN" iptables -I FORWARD 1 -s $N2_WAN -d $N1_WAN -j DROP; }
unblock_direct() { in_ns "$NS_WAN" iptables -D FORWARD -s $N1_WAN -d $N2_WAN -j DROP; in_ns "$NS_WAN" iptables -D FORWARD -s $N2_WAN -d $N1_WAN -j DROP; }

# The direct path blocked in the middle of a download: back on the relay, the
# download completes, the stall is measured; unblocked: direct again.
scenario_direct_breaks() {
  local name=$1 rc=1 detail
  nat_rules "$NS_N1" cone; nat_rules "$NS_N2" cone
  if pair_up "$name-$$" && wait_both "path direct" 10 "direct path"; then
    rm -rf "$WORK/dl-brk"; mkdir -p "$WORK/dl-brk"
    timeout 90 ip netns exec "$NS_A" gtlsclient -q --exit-on-all-streams-close --download "$WORK/dl-brk" 127.0.0.1 4443 \
      https://localhost:4443/big.bin >>"$WORK/client.log" 2>&1 &
    local cpid=$! end=$((SECONDS + 30)) f="$WORK/dl-brk/big.bin"
    while [ "$SECONDS" -lt "$end" ] && [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -lt 2097152 ]; do sleep 0.01; done
    local at; at=$(stat -c %s "$f" 2>/dev/null || echo 0)
    block_direct
    local blocked_at; blocked_at=$(now)
    # the stall: from the block until the file grows again
    local size=$at grown_at=""
    while kill -0 "$cpid" 2>/dev/null; do
      local s2; s2=$(stat -c %s "$f" 2>/dev/null || echo 0)
      if [ "$s2" -gt "$size" ] && [ -z "$grown_at" ] && grep -q "path relay" "$WORK/sa.log"; then grown_at=$(now); fi
      size=$s2
      sleep 0.02
    done
    wait "$cpid"; local crc=$?
    local stall_ms="?"; [ -n "$grown_at" ] && stall_ms=$(awk "BEGIN{printf \"%.0f\", ($grown_at - $blocked_at) * 1000}")
    local why; why=$(grep -m1 -o 'path relay no answer.*' "$WORK/sa.log")
    local back=fail
    if [ "$crc" = 0 ] && checksum_ok "$WORK/dl-brk" big.bin && [ -n "$why" ]; then
      unblock_direct
      local unblocked_at; unblocked_at=$(now)
      # the retry period is at most 30 s, and an attempt takes 3
      if wait_both "path direct" 40 "direct again" 2; then back=$(elapsed_ms "$unblocked_at"); fi
    else
      unblock_direct
    fi
    if [ "$back" != fail ]; then
      rc=0
      detail="blocked at $((at / 1048576)) MiB of 48; '$why'; data flowing again through the relay ${stall_ms} ms after the block; download intact; direct again ${back} ms after unblocking"
      FIGURES+=("direct path broken mid-download: stall ${stall_ms} ms; direct again ${back} ms after it healed")
    else
      detail="client rc=$crc, fallback line '${why}', direct again: $back"
    fi
  else
    detail="sidecars did not go direct"
  fi
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

# A relay restart while the session lives on the relay path (symmetric NAT),
# with the default 15 s keepalive: the end-to-end check, not the keepalive,
# brings both sides back.
scenario_restart_relay_path() {
  local name=$1 rc=1 detail s="$name-$$"
  nat_rules "$NS_N1" symmetric; nat_rules "$NS_N2" cone
  if pair_up "$s" 15 && wait_both "path relay" 10 "relay path"; then
    quic_get "$NS_A" 127.0.0.1 4443 small.bin "$WORK/dl-rr1" >/dev/null
    stop_relay
    start_relay
    local t0; t0=$(now)
    # a new connection as soon as the relay is back; it succeeds once both sides re-registered
    local secs; secs=$(quic_get "$NS_A" 127.0.0.1 4443 file.bin "$WORK/dl-rr2")
    local total; total=$(elapsed_ms "$t0")
    if [ "$secs" != fail ] && checksum_ok "$WORK/dl-rr2" file.bin; then
      rc=0
      detail="relay restarted; a new connection started at once completed 8 MiB intact ${total} ms later (keepalive 15 s)"
      FIGURES+=("relay restart on the relay path, keepalive 15 s: new connection done ${total} ms after the restart")
    else
      detail="download after the restart failed ($secs)"
    fi
  else
    detail="sidecars did not pair on the relay path"
  fi
  stop_sidecar sa; stop_sidecar sb
  result "$name" $rc "$detail"
}

# ---- run -----------------------------------------------------------------------

log "building the lab ($P-*) in $WORK"
build_lab
make_files
start_relay || { log "relay did not start"; cat "$WORK/relay.log"; exit 1; }
quic_server "$NS_B" 127.0.0.1 4443
quic_server "$NS_B" 127.0.0.1 4444 # for hc's session

# E2E_ONLY="name name" runs only those scenarios (while working on one)
run_scenario() { local fn=$1 name=${2:-$1}; shift; if [ -z "${E2E_ONLY:-}" ] || [[ " $E2E_ONLY " == *" $name "* ]]; then "$fn" "$@"; fi; }
run_scenario scenario_transfer cone-nat cone
run_scenario scenario_transfer symmetric-nat symmetric
run_scenario scenario_rebind nat-rebind-mid-transfer 0
run_scenario scenario_rebind nat-rebind-shared-ip 1
run_scenario scenario_shared_nat shared-nat-no-hijack
run_scenario scenario_nat_change_before_partner nat-change-before-partner
run_scenario scenario_restart relay-restart
run_scenario scenario_punch_cone punch-cone-x-cone
run_scenario scenario_punch_symmetric punch-symmetric-x-cone
run_scenario scenario_relay_only relay-only-cone-x-cone
run_scenario scenario_direct_breaks direct-path-breaks
run_scenario scenario_fleet_healthy fleet-all-healthy
run_scenario scenario_fleet_unreachable_from_b fleet-unreachable-from-b
run_scenario scenario_fleet_draining fleet-draining
run_scenario scenario_fleet_relay_dies fleet-relay-dies
run_scenario scenario_restart_relay_path relay-restart-relay-path
run_scenario scenario_udp_baseline udp-udp-relay-only
run_scenario scenario_stream udp-blocked-a-wss a
run_scenario scenario_stream udp-blocked-both both
run_scenario scenario_stream http-connect-proxy proxy
run_scenario scenario_stream ws-reset-mid-download reset
run_scenario scenario_nginx nginx-terminates-tls
run_scenario scenario_direct

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
