"""Writes the Grafana dashboards in dashboards/grafana/ from the panel lists below.

Edit the lists and run `python3 dashboards/build.py`; the JSON files are committed. Every
dashboard has a `datasource` variable (Prometheus) and, where per carrier, a `carrier`
variable; every expression is checked against a real Prometheus by dashboards/check.py.
"""
import json
import pathlib

RATE = "$__rate_interval"
C = 'carrier=~"$carrier"'


def q(expr, legend=""):
    return {"expr": expr, "legendFormat": legend}


OVERVIEW = [
    ("Messages accepted per second", "reqps", [
        q(f"sum(rate(smsroute_messages_accepted_total[{RATE}]))", "accepted")]),
    ("Terminal statuses per second", "reqps", [
        q(f"sum by (outcome) (rate(smsroute_outcomes_total[{RATE}]))", "{{outcome}}")]),
    ("Submit latency quantiles (from histograms)", "s", [
        q(f"histogram_quantile({p}, sum by (le) (rate(smsroute_submit_latency_seconds_bucket[{RATE}])))", f"p{label}")
        for p, label in [(0.5, "50"), (0.9, "90"), (0.99, "99")]]),
    ("Rejections per second, by reason", "reqps", [
        q(f"sum by (reason) (rate(smsroute_messages_rejected_total[{RATE}]))", "{{reason}}")]),
    ("Outstanding messages and dispatcher queue", "short", [
        q("smsroute_outstanding", "outstanding"), q("smsroute_queue_depth", "queue")]),
    ("Submits per second, by result", "reqps", [
        q(f"sum by (result) (rate(smsroute_submits_total[{RATE}]))", "{{result}}")]),
    ("Replies (inbound messages) per second, by keyword", "reqps", [
        q(f"sum by (keyword) (rate(smsroute_inbound_total[{RATE}]))", "{{keyword}}")]),
    ("Recipients opted out (suppression list)", "short", [q("smsroute_opted_out", "opted out")]),
    ("Journal commit latency (hand-over to durable)", "s", [
        q(f"histogram_quantile({p}, sum by (le) (rate(smsroute_journal_commit_seconds_bucket[{RATE}])))", f"p{label}")
        for p, label in [(0.5, "50"), (0.99, "99")]]),
    ("Journal: bytes written per second, disk used", "bytes", [
        q(f"rate(smsroute_journal_bytes_total[{RATE}])", "written / s"),
        q("smsroute_journal_disk_bytes", "on disk")]),
    ("Journal: waiting for the disk, files; parts awaiting receipts", "short", [
        q("smsroute_journal_waiting", "waiting for a sync"),
        q("smsroute_journal_files", "files"),
        q("smsroute_awaiting_receipts", "awaiting receipts"),
        q("smsroute_parked_messages", "parked out of memory")]),
    ("Last start: journal recovery time and messages taken up", "short", [
        q("smsroute_journal_recovery_seconds", "recovery (s)"),
        q("smsroute_journal_recovered_messages", "messages")]),
]

CARRIERS = [
    ("Segments per second vs contract and adaptive rate", "short", [
        q(f"sum by (carrier) (rate(smsroute_segments_total{{{C}}}[{RATE}]))", "{{carrier}} sent"),
        q(f"smsroute_carrier_tps{{{C}}}", "{{carrier}} contract"),
        q(f"smsroute_carrier_rate{{{C}}}", "{{carrier}} adaptive")]),
    ("Health (1 / penalty) and bucket fill", "percentunit", [
        q(f"smsroute_carrier_health{{{C}}}", "{{carrier}} health"),
        q(f"smsroute_bucket_fill{{{C}}}", "{{carrier}} bucket fill")]),
    ("Circuit state (0 closed, 1 ejected, 2 probing)", "short", [
        q(f"smsroute_circuit_state{{{C}}}", "{{carrier}}")]),
    ("Throttling answers per second", "reqps", [
        q(f"sum by (carrier) (rate(smsroute_throttled_total{{{C}}}[{RATE}]))", "{{carrier}}")]),
    ("Errors per second, by class", "reqps", [
        q(f'sum by (carrier, result) (rate(smsroute_submits_total{{{C},result!="accepted"}}[{RATE}]))',
          "{{carrier}} {{result}}")]),
    ("Submit latency p99", "s", [
        q(f"histogram_quantile(0.99, sum by (carrier, le) (rate(smsroute_submit_latency_seconds_bucket{{{C}}}[{RATE}])))",
          "{{carrier}}")]),
    ("Delivery receipt latency p50 / p95", "s", [
        q(f"histogram_quantile({p}, sum by (carrier, le) (rate(smsroute_dlr_latency_seconds_bucket{{{C}}}[{RATE}])))",
          "{{carrier}} " + label) for p, label in [(0.5, "p50"), (0.95, "p95")]]),
    ("In flight and lane depth", "short", [
        q(f"smsroute_inflight{{{C}}}", "{{carrier}} in flight"),
        q(f"smsroute_lane_depth{{{C}}}", "{{carrier}} waiting")]),
    ("Expected queue wait", "s", [
        q(f"smsroute_queue_wait_seconds{{{C}}}", "{{carrier}}")]),
    ("Receipts per second, by status", "reqps", [
        q(f"sum by (carrier, status) (rate(smsroute_receipts_total{{{C}}}[{RATE}]))", "{{carrier}} {{status}}")]),
]

ROUTING = [
    ("Failovers per second, by carrier left", "reqps", [
        q(f"sum by (carrier) (rate(smsroute_failovers_total[{RATE}]))", "{{carrier}}")]),
    ("Spillovers per second, by carrier passed over", "reqps", [
        q(f"sum by (carrier) (rate(smsroute_spillovers_total[{RATE}]))", "{{carrier}}")]),
    ("Held by route and sender buckets per second, by carrier", "reqps", [
        q(f"sum by (carrier) (rate(smsroute_held_total[{RATE}]))", "{{carrier}}")]),
    ("Retries per second, by carrier", "reqps", [
        q(f"sum by (carrier) (rate(smsroute_retries_total[{RATE}]))", "{{carrier}}")]),
    ("Delivery-quality penalties (carrier, network)", "short", [
        # `or vector(1)`: a flat 1 (no penalty) until some pair gets one.
        q("max by (carrier, network) (smsroute_quality_penalty) or vector(1)", "{{carrier}} {{network}}")]),
    ("Segments saved by smart encoding per second", "reqps", [
        q(f"rate(smsroute_segments_saved_total[{RATE}])", "saved")]),
    ("Route table generation", "short", [q("smsroute_route_table_generation", "generation")]),
    ("Route table prefixes", "short", [q("smsroute_route_table_prefixes", "prefixes")]),
    ("Table reloads", "short", [
        q(f"sum by (result) (increase(smsroute_route_table_reloads_total[{RATE}]))", "{{result}}")]),
    ("Possible duplicates, unknown and late receipts, dropped events per second", "reqps", [
        q(f"rate(smsroute_possible_duplicates_total[{RATE}])", "possible duplicates"),
        q(f"rate(smsroute_receipts_unknown_total[{RATE}])", "unknown receipts"),
        q(f"rate(smsroute_receipts_matched_late_total[{RATE}])", "receipts matched late"),
        q(f"rate(smsroute_events_dropped_total[{RATE}])", "dropped events")]),
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def dashboard(uid, title, panels, per_carrier):
    variables = [{
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0,
    }]
    if per_carrier:
        variables.append({
            "name": "carrier", "label": "Carrier", "type": "query", "datasource": DATASOURCE,
            "query": {"query": "label_values(smsroute_submits_total, carrier)", "refId": "carriers"},
            "definition": "label_values(smsroute_submits_total, carrier)",
            "multi": True, "includeAll": True, "allValue": ".*", "refresh": 2, "current": {},
            "hide": 0,
        })
    out = []
    for i, (title_, unit, targets) in enumerate(panels):
        out.append({
            "id": i + 1, "type": "timeseries", "title": title_, "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [dict(t, refId=chr(ord("A") + j), datasource=DATASOURCE)
                        for j, t in enumerate(targets)],
        })
    return {
        "uid": uid, "title": title, "tags": ["smsroute"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": variables}, "panels": out,
    }


if __name__ == "__main__":
    here = pathlib.Path(__file__).parent / "grafana"
    here.mkdir(exist_ok=True)
    for uid, title, panels, per_carrier in [
        ("smsroute-overview", "smsroute / Overview", OVERVIEW, False),
        ("smsroute-carriers", "smsroute / Carriers", CARRIERS, True),
        ("smsroute-routing", "smsroute / Routing", ROUTING, False),
    ]:
        path = here / f"{uid.removeprefix('smsroute-')}.json"
        path.write_text(json.dumps(dashboard(uid, title, panels, per_carrier), indent=2) + "\n")
        print(f"wrote {path}")
