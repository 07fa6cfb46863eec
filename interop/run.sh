#!/usr/bin/env bash
# Interop with SMPP implementations nobody here wrote: the Python smpplib client against our
# simulator and against `smsroute serve`, and our ESME (smsroute send) against an SMSC built on
# the npm smpp package; then curl and a Python HTTP client against serve's HTTP API, every
# answer checked against docs/openapi.yaml.
# Installs them in a virtualenv and an npm folder under target/interop. Needs a built
# smsroute binary: SMSROUTE=path/to/smsroute (default target/ci/smsroute).
set -euo pipefail
cd "$(dirname "$0")/.."
SMSROUTE=${SMSROUTE:-target/ci/smsroute}
work=target/interop
mkdir -p "$work"

if [ ! -x "$work/venv/bin/python" ]; then
    python3 -m venv "$work/venv"
fi
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "smpplib==2.2.4" \
    "openapi-spec-validator==0.9.0"
if [ ! -d "$work/node/node_modules/smpp" ]; then
    mkdir -p "$work/node"
    (cd "$work/node" && npm install --silent --no-audit --no-fund "smpp@0.6.0-rc.4" >/dev/null)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# 1. smpplib -> our simulator.
port=$(free_port)
"$SMSROUTE" sim --listen "127.0.0.1:$port" --system-id acme --password secret 2>"$work/sim.log" &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
for _ in $(seq 50); do (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$work/venv/bin/python" interop/smpplib_client.py "$port"
kill $sim 2>/dev/null || true

# 2. Our ESME -> an SMSC on node-smpp: 2 GSM messages of 2 parts and 2 UCS-2 of 2 parts.
port=$(free_port)
NODE_PATH="$work/node/node_modules" node interop/node_smsc.js "$port" 8 &
smsc=$!
trap 'kill $smsc 2>/dev/null || true' EXIT
for _ in $(seq 50); do (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
cat >"$work/node.toml" <<TOML
[[carriers]]
id = "node"
tps = 100
[carriers.smpp]
host = "127.0.0.1"
port = $port
system_id = "acme"
password = "secret"

[[routes]]
prefix = "44"
carrier = "node"
cost = 0.01
TOML
"$SMSROUTE" send "$work/node.toml" --to +447700900123 --text "$(printf 'Interop from smsroute. %.0s' $(seq 10))" \
    --count 2 --rate 20 --wait 10 >"$work/send-gsm.jsonl"
"$SMSROUTE" send "$work/node.toml" --to +447700900123 --text "$(printf 'Сообщение от smsroute. %.0s' $(seq 5))" \
    --count 2 --rate 20 --wait 10 >"$work/send-ucs2.jsonl"
grep -c '"event":"delivered"' "$work/send-gsm.jsonl" "$work/send-ucs2.jsonl"
wait $smsc

# 3. smpplib -> smsroute serve, in front of our simulator: binds (a wrong password refused),
# GSM and UCS-2 multipart with a receipt for every part.
sim_port=$(free_port); smpp_port=$(free_port); http_port=$(free_port)
"$SMSROUTE" sim --listen "127.0.0.1:$sim_port" --system-id acme --password secret 2>"$work/sim2.log" &
sim=$!
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
id = "shop"
system_id = "shop"
password = "s3cret"
api_keys = ["k_interop_0123456789"]
TOML
rm -rf "$work/serve-journal"
for _ in $(seq 50); do (: >"/dev/tcp/127.0.0.1/$sim_port") 2>/dev/null && break; sleep 0.1; done
"$SMSROUTE" serve "$work/serve.toml" --smpp "127.0.0.1:$smpp_port" --http "127.0.0.1:$http_port" \
    --journal "$work/serve-journal" 2>"$work/serve.log" &
serve=$!
trap 'kill $sim $serve 2>/dev/null || true' EXIT
for _ in $(seq 100); do (: >"/dev/tcp/127.0.0.1/$smpp_port") 2>/dev/null && break; sleep 0.1; done
"$work/venv/bin/python" interop/smpplib_client.py "$smpp_port" shop s3cret --bad-password
# 4. curl and an HTTP client against the same process: answers as docs/openapi.yaml says.
curl -sf -X POST "http://127.0.0.1:$http_port/v1/messages" \
    -H 'Authorization: Bearer k_interop_0123456789' \
    -d '{"to": "+44 7700 900123", "from": "ACME", "text": "curl says hi"}' | grep -q '"id":'
"$work/venv/bin/python" interop/http_check.py "$http_port" k_interop_0123456789
kill -TERM $serve
wait $serve
kill $sim 2>/dev/null || true
trap - EXIT
echo "interop: ok"
