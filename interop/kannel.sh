#!/usr/bin/env bash
# Interop with Kannel (1.4.5, the Debian package): Kannel's bearerbox binds to `smsroute serve`
# over SMPP as its SMSC (transceiver), smsbox sends GSM and UCS-2 multipart messages (Kannel
# splits them itself, 8-bit reference UDH) asking for delivery reports; `smsroute sim` is the
# carrier behind serve. Every part must be answered with our id ("N-K"), every message
# delivered by the carrier, and every receipt Kannel asked for must come back and be matched
# by Kannel to its part (Kannel then calls the dlr-url, served by interop/kannel_dlr.py).
# Installs kannel with apt-get if bearerbox is missing. Needs a built smsroute binary:
# SMSROUTE=path/to/smsroute (default target/ci/smsroute).
set -euo pipefail
cd "$(dirname "$0")/.."
SMSROUTE=${SMSROUTE:-target/ci/smsroute}
work=target/interop/kannel
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)   # Kannel's log paths must not depend on its working directory

if ! command -v bearerbox >/dev/null && [ ! -x /usr/sbin/bearerbox ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kannel >/dev/null
fi
PATH=$PATH:/usr/sbin

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT WHAT
    for _ in $(seq 100); do (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    fail "$2 is not listening on port $1"
}
fail() { echo "kannel interop: FAILED: $*" >&2; exit 1; }

pids=()
stop() { # SIGTERM to everything started here, newest first (Kannel, then serve, then sim)
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    pids=()
}
trap stop EXIT

sim_port=$(free_port); smpp_port=$(free_port); http_port=$(free_port); cb_port=$(free_port)
admin_port=$(free_port); box_port=$(free_port); sendsms_port=$(free_port)

# 1. The carrier.
"$SMSROUTE" sim --listen "127.0.0.1:$sim_port" --system-id acme --password secret 2>"$work/sim.log" &
pids+=($!)
wait_port "$sim_port" "smsroute sim"

# 2. smsroute serve, with Kannel as its SMPP client.
cat >"$work/serve.toml" <<TOML
[[carriers]]
id = "sim"
tps = 500
[carriers.smpp]
host = "127.0.0.1"
port = $sim_port
system_id = "acme"
password = "secret"

[[routes]]
prefix = "44"
carrier = "sim"
cost = 0.01

[[clients]]
id = "kannel"
system_id = "kannel"
password = "kpass"
window = 10
TOML
"$SMSROUTE" serve "$work/serve.toml" --smpp "127.0.0.1:$smpp_port" --http "127.0.0.1:$http_port" \
    --journal "$work/serve-journal" 2>"$work/serve.log" &
serve=$!
pids+=($serve)
wait_port "$smpp_port" "smsroute serve"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null || fail "serve's carrier never bound (see $work/serve.log)"

# 3. The dlr-url listener, then Kannel.
python3 interop/kannel_dlr.py "$cb_port" "$work/dlr.txt" 2>"$work/dlr.log" &
pids+=($!)
wait_port "$cb_port" "the dlr-url listener"
# msg-id-type is left unset: Kannel then keeps message ids as C strings (our "N-K").
cat >"$work/kannel.conf" <<CONF
group = core
admin-port = $admin_port
admin-password = interop
admin-allow-ip = "127.0.0.1"
smsbox-port = $box_port
box-allow-ip = "127.0.0.1"
log-file = "$work/bearerbox.log"
log-level = 0
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = smsroute
host = 127.0.0.1
port = $smpp_port
transceiver-mode = true
smsc-username = kannel
smsc-password = kpass
system-type = ""
source-addr-ton = 5
source-addr-npi = 0
dest-addr-ton = 1
dest-addr-npi = 1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $box_port
sendsms-port = $sendsms_port
log-file = "$work/smsbox.log"
log-level = 0

group = sendsms-user
username = interop
password = interop
max-messages = 5
concatenation = true
CONF
bearerbox "$work/kannel.conf" >"$work/bearerbox.out" 2>&1 &
pids+=($!)
wait_port "$box_port" "Kannel's bearerbox"
smsbox "$work/kannel.conf" >"$work/smsbox.out" 2>&1 &
pids+=($!)
wait_port "$sendsms_port" "Kannel's smsbox"
status=""
for _ in $(seq 100); do
    status=$(curl -s "http://127.0.0.1:$admin_port/status.txt?password=interop" || true)
    grep -q 'smsroute.*online' <<<"$status" && break
    sleep 0.1
done
grep -q 'smsroute.*online' <<<"$status" ||
    fail "Kannel's SMPP link to serve is not online: $(grep smsroute <<<"$status")"

# 4. Send: 3 GSM and 3 UCS-2 multipart messages, each asking for every kind of report.
text_of() { python3 -c 'import sys; p, n = sys.argv[1], int(sys.argv[2]); print((p * n)[:n].rstrip())' "$1" "$2"; }
# Kannel's parts: 153 GSM characters or 67 UCS-2 ones beside the 6-byte concatenation UDH.
parts_of() { python3 -c 'import math, sys; n = len(sys.argv[1]); print(1 if n <= int(sys.argv[2]) else math.ceil(n / int(sys.argv[3])))' "$@"; }
texts=(); codings=(); parts=()
for len in 300 420 610; do
    texts+=("$(text_of "Kannel to smsroute serve, GSM multipart $len. " "$len")"); codings+=(0)
    parts+=("$(parts_of "${texts[-1]}" 160 153)")
done
for len in 120 150 200; do
    texts+=("$(text_of "Сообщение через Kannel, UCS-2 $len. " "$len")"); codings+=(2)
    parts+=("$(parts_of "${texts[-1]}" 70 67)")
done
n=${#texts[@]}
total_parts=0
for i in "${!texts[@]}"; do
    total_parts=$((total_parts + parts[i]))
    answer=$(curl -sS -G "http://127.0.0.1:$sendsms_port/cgi-bin/sendsms" \
        --data-urlencode "username=interop" --data-urlencode "password=interop" \
        --data-urlencode "from=ACME" --data-urlencode "to=447700900123" \
        --data-urlencode "text=${texts[i]}" --data-urlencode "charset=UTF-8" \
        --data-urlencode "coding=${codings[i]}" --data-urlencode "dlr-mask=31" \
        --data-urlencode "dlr-url=http://127.0.0.1:$cb_port/dlr?msg=$i&status=%d&id=%F&reply=%A") ||
        fail "sendsms of message $i: curl failed"
    grep -q 'Accepted for delivery' <<<"$answer" || fail "sendsms of message $i answered: $answer"
done

# 5. Wait for every message's final report (status 1: delivered). Kannel 1.4.5 asks for a
# receipt on the first part of a message it splits only (sms_split clears dlr_mask on parts
# 2..K: registered_delivery 0 on those submit_sm), so serve sends one receipt a message, for
# part 1, once the whole message is delivered: Kannel must match it to that part's id, "N-1".
# Besides, Kannel reports 8 (SMSC accepted) once every part's submit_sm_resp came (smsbox
# may call the two URLs in either order).
reports() { grep -E "^msg=$1&status=$2&" "$work/dlr.txt" 2>/dev/null || true; }
all_in() {
    local i
    for i in "${!texts[@]}"; do
        [ -n "$(reports "$i" 1)" ] && [ -n "$(reports "$i" 8)" ] || return 1
    done
}
log=$work/bearerbox.log
# A receipt Kannel cannot match is lost (Kannel answers its deliver_sm with ESME_ROK all the
# same): say which, and whether it came before the submit_sm_resp that gave Kannel its id.
unmatched() {
    local lines id r a
    lines=$(grep 'got DLR but could not find message' "$log") || return 0
    echo "$lines" | sed 's/^/  /'
    for id in $(sed -nE 's/.*id<([^>]*)>.*/\1/p' <<<"$lines"); do
        r=$(grep -n "receipted_message_id: \"$id\"" "$log" | head -1 | cut -d: -f1)
        a=$(grep -n " message_id: \"$id\"\$" "$log" | head -1 | cut -d: -f1)
        if [ -n "$r" ] && [ -n "$a" ] && [ "$r" -lt "$a" ]; then
            echo "  receipt for $id: deliver_sm read by Kannel at $log:$r, BEFORE the submit_sm_resp giving $id (line $a)"
        else
            echo "  receipt for $id: deliver_sm at line ${r:-?}, submit_sm_resp with $id at line ${a:-?}"
        fi
    done
    return 1
}
for _ in $(seq 300); do
    all_in && break
    grep -q 'got DLR but could not find message' "$log" && break
    sleep 0.1
done
sleep 0.5   # let any stray (failed, duplicate) report come in before checking
why=$(unmatched) || fail "Kannel could not match receipts from serve:"$'\n'"$why"
for i in "${!texts[@]}"; do
    all=$(reports "$i" '[0-9]+' | tr '\n' ' ')
    [ "$(reports "$i" 1 | wc -l)" -eq 1 ] || fail "message $i: not one delivered report: ${all:-none}"
    [ "$(reports "$i" 8 | wc -l)" -eq 1 ] || fail "message $i: not one SMSC-accepted report: ${all:-none}"
    id=$(reports "$i" 1 | sed -E 's/.*&id=([^&]*).*/\1/')
    [[ $id =~ ^[0-9]+-1$ ]] || fail "message $i (${parts[i]} parts): its receipt's id is $id, not part 1's N-1"
    grep -q "&reply=id%3A$id+" <<<"$(reports "$i" 1)" || fail "message $i: receipt text not for $id: $all"
done
if grep -qE '&status=(2|16)&' "$work/dlr.txt"; then
    fail "failure reports: $(grep -E '&status=(2|16)&' "$work/dlr.txt" | tr '\n' ' ')"
fi
receipts=$(grep -c '&status=1&' "$work/dlr.txt" || true)
[ "$receipts" -eq "$n" ] || fail "$receipts delivered reports for $n messages: $(tr '\n' ' ' <"$work/dlr.txt")"

# Kannel's own view: every part submitted and answered with our id, every receipt matched.
submits=$(grep -c 'type_name: submit_sm$' "$log" || true)
[ "$submits" -eq "$total_parts" ] || fail "Kannel sent $submits submit_sm, $total_parts parts expected"
answered=$(grep -cE ' message_id: "[0-9]+-[0-9]+"$' "$log" || true)
[ "$answered" -eq "$total_parts" ] || fail "$answered submit_sm_resp with an id N-K for $total_parts parts"
matched=$(grep -c 'DLR\[internal\]: created DLR message for URL' "$log" || true)  # a lookup that found its part
[ "$matched" -eq "$n" ] || fail "Kannel matched $matched receipts, $n expected (see $log)"

# The carrier side (serve's /metrics): every message accepted once and delivered, every
# segment the simulator got answered by a DELIVRD receipt.
curl -sf "http://127.0.0.1:$http_port/metrics" >"$work/metrics.txt" || fail "no /metrics from serve"
metric() { awk -v re="^$1" '$0 ~ re {s += $NF} END {print s + 0}' "$work/metrics.txt"; }
accepted=$(metric 'smsroute_messages_accepted_total')
delivered=$(metric 'smsroute_outcomes_total\\{outcome="delivered"\\}')
segments=$(metric 'smsroute_segments_total\\{carrier="sim"\\}')
carrier_receipts=$(metric 'smsroute_receipts_total\\{carrier="sim",status="delivered"\\}')
[ "$accepted" -eq "$n" ] && [ "$delivered" -eq "$n" ] && [ "$segments" -gt 0 ] && [ "$carrier_receipts" -eq "$segments" ] ||
    fail "serve: $accepted accepted, $delivered delivered of $n messages; $segments segments to the carrier, $carrier_receipts receipts from it"

# Stop Kannel and the listener, then serve: it must drain and exit 0 on SIGTERM.
while [ "${pids[-1]}" != "$serve" ]; do
    kill -TERM "${pids[-1]}" 2>/dev/null || true
    wait "${pids[-1]}" 2>/dev/null || true
    unset 'pids[-1]'
done
kill -TERM "$serve"
rc=0; wait "$serve" || rc=$?
[ "$rc" -eq 0 ] || fail "smsroute serve exited $rc on SIGTERM (see $work/serve.log)"
stop
trap - EXIT
echo "kannel interop: $n messages, $receipts receipts matched ($total_parts parts submitted by Kannel)"
