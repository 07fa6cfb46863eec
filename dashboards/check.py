"""Checks every dashboard panel query and every alert rule against a real Prometheus.

1. `promtool check config` and `promtool check rules`.
2. Runs `smsroute loadtest` (at least 30 s) with the metrics exporter on, and a Prometheus
   scraping it every 5 s with smsroute's rules loaded.
3. Near the end of the load, evaluates every expression of the dashboards (with `$carrier`
   set to a configured carrier and `$__rate_interval` to 1m) and of the rules through the HTTP
   API. Fails if any is invalid or if a dashboard expression returns no series.

Usage: python3 dashboards/check.py SMSROUTE_BINARY
"""
import json
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = pathlib.Path(__file__).parent
CARRIER = "uk-beta"
LOAD_S = 40
QUERY_AT_S = 34


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_exprs():
    for path in sorted((HERE / "grafana").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$carrier", CARRIER)
                yield f"{path.name}: {panel['title']}", expr


def rule_exprs():
    import re
    text = (HERE / "alerts.yml").read_text()
    for name, expr in re.findall(r"- alert: (\S+)\n\s+expr: (.+)", text):
        yield f"alerts.yml: {name}", expr.strip()


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def main():
    smsroute = sys.argv[1]
    subprocess.run(["promtool", "check", "config", str(HERE / "prometheus.yml")], check=True)
    subprocess.run(["promtool", "check", "rules", str(HERE / "alerts.yml")], check=True)

    work = pathlib.Path(tempfile.mkdtemp(prefix="smsroute-prom-"))
    metrics_port, prom_port = free_port(), free_port()
    config = (HERE / "prometheus.yml").read_text().replace("127.0.0.1:9000", f"127.0.0.1:{metrics_port}")
    config = config.replace("- alerts.yml", f"- {HERE.resolve() / 'alerts.yml'}")
    (work / "prometheus.yml").write_text(config)
    load = subprocess.Popen(
        [smsroute, "loadtest", "loadtest/scenarios/outage-failover.toml", "--duration", str(LOAD_S),
         "--metrics", f"127.0.0.1:{metrics_port}", "--report-dir", str(work / "report")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"))
    failures = []
    try:
        started = time.time()
        time.sleep(QUERY_AT_S)
        up = query(prom_port, 'up{job="smsroute"}')
        if not up.get("data", {}).get("result"):
            failures.append(f"Prometheus is not scraping smsroute: {up}")
        checked = 0
        for where, expr in list(dashboard_exprs()) + list(rule_exprs()):
            answer = query(prom_port, expr)
            checked += 1
            if answer.get("status") != "success":
                failures.append(f"{where}: invalid: {expr}: {answer.get('error')}")
            elif where.endswith(".json") or ".json:" in where:
                if not answer["data"]["result"]:
                    failures.append(f"{where}: no series: {expr}")
        print(f"checked {checked} expressions after {time.time() - started:.0f} s of load")
    finally:
        prom.terminate()
        load.wait(timeout=120)
        prom.wait(timeout=30)
    if load.returncode != 0:
        failures.append(f"the load test exited {load.returncode}")
    for f in failures:
        print("FAIL", f)
    if failures:
        sys.exit(1)
    print("dashboards and alert rules: ok")


if __name__ == "__main__":
    main()
