#!/usr/bin/env bash
# Gateways side by side, on this machine, in one run (docs: benches/gateways/README.md).
#
#  (a) The same HTTP load (wrk, closed loop: WRK_CONNS connections, WRK_THREADS threads) into
#      `smsroute serve` (POST /v1/messages, JSON, bearer key; journal on) and into Kannel 1.4.5
#      (smsbox's sendsms, dlr-mask=1 with a dlr-url), one after the other, both sending over
#      SMPP to the same `smsroute sim` (accepts everything, answers DELIVRD receipts).
#      For each: messages a second end to end (receipt delivered, over the measured window),
#      wrk's HTTP rate and p99, and the CPU of the gateway's processes (/proc utime+stime).
#  (b) `smsroute serve` driven over SMPP with receipts and its journal: benches/gateways/
#      smpp_load.py (several binds, windowed, open loop at SMPP_RATE for SMPP_SECONDS), and
#      `smsroute send` (SEND_COUNT messages) for comparison.
#
# serve runs first, then Kannel: Kannel is stopped with a backlog, and the receipts the
# simulator still holds for its system_id would otherwise reach serve's binds.
#
# Needs a built smsroute binary: SMSROUTE=path/to/smsroute (default target/ci/smsroute).
# Installs wrk and kannel with apt-get when missing. Writes target/gateways/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
SMSROUTE=${SMSROUTE:-target/ci/smsroute}
DURATION=${DURATION:-20}          # seconds of measured HTTP load, per gateway
WARMUP=${WARMUP:-3}               # seconds of HTTP load before it, not measured
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-64}
SMPP_RATE=${SMPP_RATE:-50000}     # (b): target submits a second
SMPP_SECONDS=${SMPP_SECONDS:-10}  # (b): seconds of submitting
SMPP_SKIP=${SMPP_SKIP:-2}         # (b): first seconds left out of the measured window
SMPP_BINDS=${SMPP_BINDS:-4}
SMPP_WINDOW=${SMPP_WINDOW:-1000}  # unanswered submits per bind (client side and serve's client window)
SMPP_PROCS=${SMPP_PROCS:-1}       # processes of smpp_load.py
SEND_COUNT=${SEND_COUNT:-5000}    # (b): messages for `smsroute send` (it paces itself, see README)
# Kannel's store: spool (a file per queued message, in a directory on tmpfs, /dev/shm),
# spool-disk (the same under target/gateways, on this machine's ext4) or none. Kannel writes
# its spool files without fsync, so on disk or on tmpfs they survive a crash of the process
# only; on ext4 the create/unlink churn makes inode allocation slow (recently_deleted()) once
# earlier runs or Kannel itself deleted many files, and the figure flips between ~1,000 and
# ~500 msg/s from run to run: see benches/gateways/README.md.
KANNEL_STORE=${KANNEL_STORE:-spool}
KANNEL_PENDING=${KANNEL_PENDING:-512}          # Kannel's max-pending-submits (SMPP window)
TEXT="Benchmark message from wrk"

here=benches/gateways
work=target/gateways
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)   # Kannel's paths must not depend on its working directory
[ -x "$SMSROUTE" ] || { echo "gateways: no smsroute binary at $SMSROUTE (set SMSROUTE)" >&2; exit 1; }
SMSROUTE=$(cd "$(dirname "$SMSROUTE")" && pwd)/$(basename "$SMSROUTE")

if ! command -v wrk >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
if ! command -v bearerbox >/dev/null && [ ! -x /usr/sbin/bearerbox ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kannel >/dev/null
fi
PATH=$PATH:/usr/sbin
script_start=$(date +%s.%N)

fail() { echo "gateways: FAILED: $*" >&2; exit 1; }
log() { echo "gateways: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT WHAT
    for _ in $(seq 100); do (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    fail "$2 is not listening on port $1"
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-0}f\", $1 }"; }
hz=$(getconf CLK_TCK)
ticks() { # PID...: utime+stime of those processes, clock ticks
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
snap() { # PID...: one line per thread, "tid comm utime stime"
    local p t
    for p in "$@"; do
        for t in /proc/"$p"/task/*/stat; do awk '{print $1, $2, $14, $15}' "$t" 2>/dev/null || true; done
    done
}
split_cpu() { # FILE0 FILE1 SECONDS: CPU by thread name, cores (user+sys)
    awk -v hz="$hz" -v secs="$3" '
        FNR == NR { u[$1] = $3; s[$1] = $4; next }
        { du = $3 - u[$1]; ds = $4 - s[$1]; name = $2; gsub(/[()]/, "", name)
          n[name]++; U[name] += du; S[name] += ds }
        END { for (k in U) printf "%s%s ×%d %.2f (user %.2f, sys %.2f)", (c++ ? "; " : ""), k, n[k],
                  (U[k] + S[k]) / hz / secs, U[k] / hz / secs, S[k] / hz / secs }' "$1" "$2"
}
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }   # all cores, ticks
cores() { calc "($2 - $1) / $hz / $3" 2; }   # T0 T1 SECONDS

pids=()
stop_pid() { # PID: SIGTERM, 10 s, then SIGKILL
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
forget() { local p=$1 i; for i in "${!pids[@]}"; do [ "${pids[i]}" = "$p" ] && unset 'pids[i]'; done; pids=("${pids[@]}"); }
stop_all() {
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
    pids=()
}
spool_dir=""
cleanup() { stop_all; if [ -n "$spool_dir" ]; then rm -rf "$spool_dir"; fi; }
trap cleanup EXIT
run_fg() { # COMMAND...: in the background and waited for, so that a signal stops the script at once
    local p rc=0
    "$@" &
    p=$!
    pids+=("$p")
    wait "$p" || rc=$?
    forget "$p"
    return "$rc"
}
trap 'exit 130' INT TERM

# wrk's summary: requests/s, p99 in ms, non-2xx answers, socket errors.
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
wrk_p99() {
    awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        m = (u == "us") ? v / 1000 : (u == "ms") ? v : (u == "s") ? v * 1000 : (u == "m") ? v * 60000 : v;
        printf "%.2f", m }' "$1"
}
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/ {print $NF; f = 1} END {if (!f) print 0}' "$1"; }
wrk_errors() { awk '/Socket errors:/ {sub(/.*Socket errors: /, ""); print; f = 1} END {if (!f) print "none"}' "$1"; }

machine_note() { # a line: load average and the busiest processes that are not ours
    local top
    top=$(top -bn1 -w 200 | awk 'NR > 7 && $9 + 0 >= 5 {printf "%s %s%%, ", $12, $9}' | sed 's/, $//')
    echo "load average $(cut -d' ' -f1-3 /proc/loadavg); processes at 5 % CPU or more: ${top:-none}"
}

log "machine before: $(machine_note)"
machine_before=$(machine_note)

# ---------------------------------------------------------------- the carrier
sim_port=$(free_port)
"$SMSROUTE" sim --listen "127.0.0.1:$sim_port" --system-id acme --password secret 2>"$work/sim.log" &
sim=$!
pids+=("$sim")
wait_port "$sim_port" "smsroute sim"

# ---------------------------------------------------------------- smsroute serve
smpp_port=$(free_port); http_port=$(free_port)
api_key=k_bench_0123456789abcdef
cat >"$work/serve.toml" <<TOML
[[carriers]]
id = "sim"
tps = 1000000
window = 512
[carriers.smpp]
host = "127.0.0.1"
port = $sim_port
system_id = "acme"
password = "secret"
binds = 4

[[routes]]
prefix = "44"
carrier = "sim"
cost = 0.01

[[clients]]
id = "http"
api_keys = ["$api_key"]

[[clients]]
id = "load"
system_id = "load"
password = "lpass"
window = $SMPP_WINDOW
max_binds = 64

[[clients]]
id = "send"
system_id = "send"
password = "spass"
window = 1000
max_binds = 8
TOML
"$SMSROUTE" serve "$work/serve.toml" --smpp "127.0.0.1:$smpp_port" --http "127.0.0.1:$http_port" \
    --journal "$work/serve-journal" 2>"$work/serve.log" &
serve=$!
pids+=("$serve")
wait_port "$http_port" "smsroute serve"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null || fail "serve's carrier never bound (see $work/serve.log)"
metric() { # REGEX: the sum of serve's matching samples
    curl -sf "http://127.0.0.1:$http_port/metrics" | awk -v re="^$1" '$0 ~ re {s += $NF} END {printf "%d", s}'
}
m_delivered='smsroute_outcomes_total\{outcome="delivered"\}'
m_accepted='smsroute_messages_accepted_total'
m_overloaded='smsroute_messages_rejected_total\{reason="overloaded"\}'

# (a) serve over HTTP ------------------------------------------------------------------
log "serve, HTTP: ${WARMUP}s warm-up, ${DURATION}s measured (wrk -t$WRK_THREADS -c$WRK_CONNS)"
export SERVE_API_KEY=$api_key
serve_url="http://127.0.0.1:$http_port/v1/messages"
run_fg wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WARMUP}s" -s "$here/serve_post.lua" "$serve_url" >"$work/wrk-serve-warmup.txt"
s_load=$(cut -d' ' -f1 /proc/loadavg)
t0=$(now); c0=$(ticks "$serve"); k0=$(ticks "$sim"); b0=$(busy); d0=$(metric "$m_delivered"); a0=$(metric "$m_accepted")
snap "$serve" >"$work/threads-serve-http.0"; snap "$sim" >"$work/threads-sim-http.0"
run_fg wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency -s "$here/serve_post.lua" "$serve_url" >"$work/wrk-serve.txt"
t1=$(now); c1=$(ticks "$serve"); k1=$(ticks "$sim"); b1=$(busy); d1=$(metric "$m_delivered"); a1=$(metric "$m_accepted")
snap "$serve" >"$work/threads-serve-http.1"; snap "$sim" >"$work/threads-sim-http.1"
secs=$(calc "$t1 - $t0" 3)
s_threads=$(split_cpu "$work/threads-serve-http.0" "$work/threads-serve-http.1" "$secs")
s_sim_threads=$(split_cpu "$work/threads-sim-http.0" "$work/threads-sim-http.1" "$secs")
s_e2e=$(calc "($d1 - $d0) / $secs"); s_acc=$(calc "($a1 - $a0) / $secs")
s_rps=$(wrk_rps "$work/wrk-serve.txt"); s_p99=$(wrk_p99 "$work/wrk-serve.txt")
s_non2xx=$(wrk_non2xx "$work/wrk-serve.txt"); s_err=$(wrk_errors "$work/wrk-serve.txt")
s_cpu=$(cores "$c0" "$c1" "$secs"); s_sim=$(cores "$k0" "$k1" "$secs"); s_busy=$(cores "$b0" "$b1" "$secs")
# Everything accepted must end delivered (the receipts of the last requests come in after).
for _ in $(seq 100); do [ "$(metric "$m_delivered")" -ge "$(metric "$m_accepted")" ] && break; sleep 0.1; done
s_left=$(( $(metric "$m_accepted") - $(metric "$m_delivered") ))
log "serve HTTP: $s_e2e delivered/s, wrk $s_rps req/s p99 $s_p99 ms, serve ${s_cpu} cores"

# (b) serve over SMPP: smpp_load.py ------------------------------------------------------
log "serve, SMPP: smpp_load.py, $SMPP_BINDS binds x window $SMPP_WINDOW, target $SMPP_RATE/s for ${SMPP_SECONDS}s"
o0=$(metric "$m_overloaded")
python3 "$here/smpp_load.py" 127.0.0.1 "$smpp_port" load lpass --binds "$SMPP_BINDS" \
    --window "$SMPP_WINDOW" --rate "$SMPP_RATE" --duration "$SMPP_SECONDS" --skip "$SMPP_SKIP" \
    --drain 10 --procs "$SMPP_PROCS" >"$work/smpp-load.json" 2>"$work/smpp-load.err" &
load=$!
pids+=("$load")
run_fg sleep "$(calc "1.0 + $SMPP_SKIP" 2)"   # the client binds for 1 s, then submits from its t0
t0=$(now); c0=$(ticks "$serve"); k0=$(ticks "$sim"); b0=$(busy); d0=$(metric "$m_delivered")
snap "$serve" >"$work/threads-serve-smpp.0"; snap "$sim" >"$work/threads-sim-smpp.0"
run_fg sleep "$((SMPP_SECONDS - SMPP_SKIP))"
t1=$(now); c1=$(ticks "$serve"); k1=$(ticks "$sim"); b1=$(busy); d1=$(metric "$m_delivered")
snap "$serve" >"$work/threads-serve-smpp.1"; snap "$sim" >"$work/threads-sim-smpp.1"
wait "$load" || fail "smpp_load.py failed: $(cat "$work/smpp-load.err")"
forget "$load"
secs=$(calc "$t1 - $t0" 3)
p_serve_e2e=$(calc "($d1 - $d0) / $secs")
p_threads=$(split_cpu "$work/threads-serve-smpp.0" "$work/threads-serve-smpp.1" "$secs")
p_sim_threads=$(split_cpu "$work/threads-sim-smpp.0" "$work/threads-sim-smpp.1" "$secs")
p_cpu=$(cores "$c0" "$c1" "$secs"); p_sim=$(cores "$k0" "$k1" "$secs"); p_busy=$(cores "$b0" "$b1" "$secs")
p_overloaded=$(( $(metric "$m_overloaded") - o0 ))
j() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); v = eval(sys.argv[2], {}, d); print(v)' "$work/smpp-load.json" "$1"; }
p_sent=$(j sent); p_acc=$(j accepted); p_thr=$(j throttled_0x58); p_qf=$(j msgqful_0x14)
p_other=$(j 'sum(other_errors.values())'); p_rcpt=$(j receipts); p_delivrd=$(j delivrd)
p_acc_s=$(j accepted_per_s_window); p_e2e=$(j delivered_per_s_window); p_overall=$(j delivered_per_s_overall)
p_client=$(j client_cpu_cores); p_span=$(j first_submit_to_last_receipt_s)
p_series_a=$(j 'series_accepted'); p_series_r=$(j 'series_receipts')
log "serve SMPP: $p_e2e receipts/s at the client ($p_serve_e2e delivered/s in serve), accepted $p_acc of $p_sent, 0x58 $p_thr, 0x14 $p_qf"

# (b) serve over SMPP: smsroute send --------------------------------------------------------
cat >"$work/send.toml" <<TOML
[[carriers]]
id = "hub"
tps = 1000000
window = 4000
[carriers.smpp]
host = "127.0.0.1"
port = $smpp_port
system_id = "send"
password = "spass"
binds = 4

[[routes]]
prefix = "44"
carrier = "hub"
cost = 0.01
TOML
log "serve, SMPP: smsroute send --count $SEND_COUNT --rate $SMPP_RATE"
k0=$(ticks "$serve")
# One process: wall time and its CPU (its own rusage).
read -r e_wall e_cpu e_rc < <(python3 - "$SMSROUTE" "$work/send.toml" "$SEND_COUNT" "$SMPP_RATE" "$work/send.out" "$work/send.err" <<'PY'
import resource, subprocess, sys, time
exe, cfg, count, rate, out, err = sys.argv[1:]
t = time.time()
with open(out, "w") as o, open(err, "w") as e:
    rc = subprocess.call([exe, "send", cfg, "--to", "447700900123", "--text", "Benchmark message from send",
                          "--count", count, "--rate", rate, "--wait", "20"], stdout=o, stderr=e)
wall = time.time() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.3f} {(ru.ru_utime + ru.ru_stime) / wall:.2f} {rc}")
PY
)
k1=$(ticks "$serve")
e_delivered=$(grep -c '"event":"delivered"' "$work/send.out" || true)
e_rate=$(calc "$e_delivered / $e_wall")
e_serve=$(cores "$k0" "$k1" "$e_wall")
log "smsroute send: $e_delivered delivered in ${e_wall}s ($e_rate/s), exit $e_rc"

# serve drains and exits 0 on SIGTERM; the simulator is then free for Kannel alone.
kill -TERM "$serve"
rc=0; wait "$serve" || rc=$?
forget "$serve"
[ "$rc" -eq 0 ] || log "smsroute serve exited $rc on SIGTERM (see $work/serve.log)"
journal_bytes=$(du -sb "$work/serve-journal" | cut -f1)

# (a) Kannel over HTTP ---------------------------------------------------------------
cb_port=$(free_port); admin_port=$(free_port); box_port=$(free_port); sendsms_port=$(free_port)
python3 "$here/dlr_counter.py" "$cb_port" 2>"$work/dlr_counter.log" &
dlrc=$!
pids+=("$dlrc")
wait_port "$cb_port" "the dlr-url counter"
store=""
case $KANNEL_STORE in
    spool) spool_dir=$(mktemp -d /dev/shm/smsroute-gateways-spool.XXXXXX) ;;
    spool-disk) spool_dir=$work/kannel-spool; mkdir -p "$spool_dir" ;;
    none) ;;
    *) fail "KANNEL_STORE=$KANNEL_STORE: expected spool, spool-disk or none" ;;
esac
if [ -n "$spool_dir" ]; then
    store=$'store-type = spool\nstore-location = "'"$spool_dir"'"'
fi
cat >"$work/kannel.conf" <<CONF
group = core
admin-port = $admin_port
admin-password = bench
admin-allow-ip = "127.0.0.1"
smsbox-port = $box_port
box-allow-ip = "127.0.0.1"
log-file = "$work/bearerbox.log"
log-level = 4
access-log = "/dev/null"
dlr-storage = internal
$store

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = $sim_port
transceiver-mode = true
smsc-username = acme
smsc-password = secret
system-type = ""
source-addr-ton = 5
source-addr-npi = 0
dest-addr-ton = 1
dest-addr-npi = 1
max-pending-submits = $KANNEL_PENDING

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $box_port
sendsms-port = $sendsms_port
log-file = "$work/smsbox.log"
log-level = 4
access-log = "/dev/null"

group = sendsms-user
username = bench
password = bench
max-messages = 1
CONF
bearerbox "$work/kannel.conf" >"$work/bearerbox.out" 2>&1 &
bb=$!
pids+=("$bb")
wait_port "$box_port" "Kannel's bearerbox"
smsbox "$work/kannel.conf" >"$work/smsbox.out" 2>&1 &
sb=$!
pids+=("$sb")
wait_port "$sendsms_port" "Kannel's smsbox"
kstatus() { curl -s "http://127.0.0.1:$admin_port/status.txt?password=bench" || true; }
for _ in $(seq 100); do kstatus | grep -q '^ *sim\[sim\].*online' && break; sleep 0.1; done
kstatus | grep -q '^ *sim\[sim\].*online' || fail "Kannel's SMPP link to the simulator is not online"
k_sent() { kstatus | awk '/^SMS: received/ {sub(/.*sent /, ""); print $1 + 0; exit}'; }
k_dlr() { kstatus | awk '/^DLR: received/ {sub(/,/, "", $3); print $3 + 0; exit}'; }
k_store() { kstatus | awk '/store size/ {print $NF; exit}'; }
k_queued() { kstatus | awk '/^SMS: received/ {sub(/.*sent [0-9]+ \(/, ""); print $1 + 0; exit}'; }
cb_delivered() { curl -s "http://127.0.0.1:$cb_port/count" | awk '{print $2 + 0}'; }
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
kannel_url="http://127.0.0.1:$sendsms_port/cgi-bin/sendsms?username=bench&password=bench&from=ACME&to=447700900123&text=$(enc "$TEXT")&dlr-mask=1&dlr-url=$(enc "http://127.0.0.1:$cb_port/dlr?s=%d")"
# One message end to end before the load: the dlr-url must be called with status 1.
curl -sf "$kannel_url" | grep -q 'Accepted for delivery' || fail "Kannel's sendsms did not accept a message"
for _ in $(seq 100); do [ "$(cb_delivered)" -ge 1 ] && break; sleep 0.1; done
[ "$(cb_delivered)" -ge 1 ] || fail "no delivery report from Kannel through the dlr-url"

store_note=$KANNEL_STORE
case $KANNEL_STORE in spool) store_note="spool on tmpfs" ;; spool-disk) store_note="spool on ext4" ;; esac
log "Kannel, HTTP: ${WARMUP}s warm-up, ${DURATION}s measured (store: $store_note, max-pending-submits $KANNEL_PENDING)"
run_fg wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WARMUP}s" "$kannel_url" >"$work/wrk-kannel-warmup.txt"
k_load=$(cut -d' ' -f1 /proc/loadavg)
t0=$(now); c0=$(ticks "$bb" "$sb"); k0=$(ticks "$sim"); l0=$(ticks "$dlrc"); b0=$(busy)
snap "$bb" >"$work/threads-bearerbox.0"; snap "$sb" >"$work/threads-smsbox.0"
cb0=$(cb_delivered); dl0=$(k_dlr); se0=$(k_sent)
run_fg wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency "$kannel_url" >"$work/wrk-kannel.txt"
t1=$(now); c1=$(ticks "$bb" "$sb"); k1=$(ticks "$sim"); l1=$(ticks "$dlrc"); b1=$(busy)
snap "$bb" >"$work/threads-bearerbox.1"; snap "$sb" >"$work/threads-smsbox.1"
cb1=$(cb_delivered); dl1=$(k_dlr); se1=$(k_sent)
secs=$(calc "$t1 - $t0" 3)
kn_e2e=$(calc "($cb1 - $cb0) / $secs"); kn_dlr=$(calc "($dl1 - $dl0) / $secs"); kn_sent=$(calc "($se1 - $se0) / $secs")
kn_rps=$(wrk_rps "$work/wrk-kannel.txt"); kn_p99=$(wrk_p99 "$work/wrk-kannel.txt")
kn_non2xx=$(wrk_non2xx "$work/wrk-kannel.txt"); kn_err=$(wrk_errors "$work/wrk-kannel.txt")
kn_cpu=$(cores "$c0" "$c1" "$secs"); kn_sim=$(cores "$k0" "$k1" "$secs"); kn_cb=$(cores "$l0" "$l1" "$secs")
kn_busy=$(cores "$b0" "$b1" "$secs")
kn_threads="$(split_cpu "$work/threads-bearerbox.0" "$work/threads-bearerbox.1" "$secs"); $(split_cpu "$work/threads-smsbox.0" "$work/threads-smsbox.1" "$secs")"
kn_store=$(k_store); kn_queued=$(k_queued)
log "Kannel HTTP: $kn_e2e delivered/s (dlr-url), wrk $kn_rps req/s p99 $kn_p99 ms, bearerbox+smsbox ${kn_cpu} cores, store size $kn_store"
stop_pid "$sb"; forget "$sb"
stop_pid "$bb"; forget "$bb"
stop_all
# Kannel leaves one spool file per message it had not sent: clear them now, not at the next
# run's start (tens of thousands of unlinks).
spool_left=0
if [ -n "$spool_dir" ]; then
    spool_left=$(find "$spool_dir" -type f | wc -l)
    rm -rf "$spool_dir"
    spool_dir=""
fi
trap - EXIT

machine_after=$(machine_note)
total=$(calc "$(now) - $script_start" 1)
ratio=$(awk -v s="$s_e2e" -v k="$kn_e2e" 'BEGIN { if (k > 0) printf "%.1f", s / k; else print "n/a" }')
smpp_ratio=$(awk -v s="$p_e2e" -v k="$kn_e2e" 'BEGIN { if (k > 0) printf "%.1f", s / k; else print "n/a" }')

{
    echo "# Gateways on this machine ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores)"
    echo
    echo "smsroute: \`$SMSROUTE\`; Kannel $(bearerbox --version 2>&1 | sed -n "s/.*version \`\(.*\)'.*/\1/p" | head -1); wrk -t$WRK_THREADS -c$WRK_CONNS, ${WARMUP} s warm-up then ${DURATION} s measured per gateway."
    echo
    echo "## (a) The same HTTP load, one gateway after the other, both to one \`smsroute sim\` (receipts asked)"
    echo
    echo "| gateway | delivered end to end /s | HTTP answered /s (wrk) | HTTP p99 | gateway CPU (cores) | sim CPU | machine busy (cores) | non-2xx | load avg at start |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    echo "| smsroute serve (journal on) | **$s_e2e** | $s_rps | $s_p99 ms | $s_cpu | $s_sim | $s_busy | $s_non2xx | $s_load |"
    echo "| Kannel 1.4.5 (store: $store_note, max-pending-submits $KANNEL_PENDING) | **$kn_e2e** | $kn_rps | $kn_p99 ms | $kn_cpu | $kn_sim | $kn_busy | $kn_non2xx | $k_load |"
    echo
    echo "serve / Kannel, delivered end to end: **${ratio}×**."
    echo
    echo "- serve: delivered = \`smsroute_outcomes_total{outcome=\"delivered\"}\` (the carrier's DELIVRD receipt matched, journaled) over the window; accepted $s_acc/s; $s_left accepted but not delivered 10 s after the load; wrk socket errors: $s_err."
    echo "- Kannel: delivered = dlr-url callbacks with status 1 at the counter over the window; bearerbox in the same window: $kn_sent submits/s sent to the SMSC, $kn_dlr DLRs/s received; at the end of the load $kn_queued queued, store size $kn_store (accepted by HTTP, not yet sent; $spool_left spool files left when Kannel stopped); wrk socket errors: $kn_err. Callback counter CPU: $kn_cb cores (not counted in Kannel's). Gateway CPU = bearerbox + smsbox."
    echo
    echo "## (b) smsroute serve over SMPP, receipts asked, journal on"
    echo
    echo "| client | target /s | submits accepted /s | delivered end to end /s (receipts at the client) | delivered in serve /s | serve CPU | sim CPU | client CPU | 0x58 | 0x14 | other errors |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    echo "| smpp_load.py, $SMPP_BINDS binds × window $SMPP_WINDOW, ${SMPP_SECONDS} s (window [${SMPP_SKIP}, ${SMPP_SECONDS}) s) | $SMPP_RATE | $p_acc_s | **$p_e2e** | $p_serve_e2e | $p_cpu | $p_sim | $p_client | $p_thr | $p_qf | $p_other |"
    echo "| smsroute send, 4 binds, $SEND_COUNT messages (whole run) | $SMPP_RATE | | **$e_rate** | | $e_serve | | $e_cpu | | | |"
    echo
    echo "serve (SMPP) / Kannel (HTTP), delivered end to end: ${smpp_ratio}×. Machine busy during the SMPP window: $p_busy cores."
    echo
    echo "- smpp_load.py: $p_sent submits sent, $p_acc accepted, $p_rcpt receipts ($p_delivrd DELIVRD), $p_overall delivered/s from first submit to last receipt (${p_span} s); serve counted $p_overloaded refusals as overloaded."
    echo "- accepted per second: $p_series_a"
    echo "- receipts per second: $p_series_r"
    echo "- smsroute send: $e_delivered delivered of $SEND_COUNT in ${e_wall} s (exit $e_rc). It paces open loop (message n due at n / rate); the wall time includes binding and waiting for the last receipt."
    echo
    echo "## Where the CPU went (cores, by thread name, over the measured windows)"
    echo
    echo "- serve, HTTP: $s_threads"
    echo "- sim, during serve HTTP: $s_sim_threads"
    echo "- serve, SMPP (smpp_load.py): $p_threads"
    echo "- sim, during serve SMPP: $p_sim_threads"
    echo "- Kannel: $kn_threads"
    echo
    echo "## Machine"
    echo
    echo "- before: $machine_before"
    echo "- after: $machine_after"
    echo "- serve's journal after the run: $journal_bytes bytes; script time ${total} s."
} >"$work/results.md"
cat "$work/results.md"
