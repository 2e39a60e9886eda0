#!/usr/bin/env python3
"""Writes the NTA Grafana dashboards (dashboards/*.json) from the panel lists below.

    python3 infra/monitoring/grafana/dashboards.py           # rewrite the JSON files
    python3 infra/monitoring/grafana/dashboards.py --check   # fail if they differ (check.sh)

The JSON is what Grafana loads (provisioning/dashboards/nta.yml); this script is its source, so
that a panel is one line to review. Every query goes to the datasource uid `nta-prometheus`.
Per-role dashboards select processes with `$job` and `$instance`, taken from nta_build_info
(a role may run alone, job nta-<role>, or with others, job nta-all). The integration test
(crates/nta/tests/monitoring.rs) runs every expression against a real Prometheus.
"""
import json
import sys
from pathlib import Path

DS = {"type": "prometheus", "uid": "nta-prometheus"}
OUT = Path(__file__).resolve().parent / "dashboards"
SEL = 'job=~"$job", instance=~"$instance"'


def rate(metric, by="", sel=SEL):
    """Per-second rate of a counter summed over the selected processes (optionally by labels)."""
    grouping = f" by ({by})" if by else ""
    selector = f"{{{sel}}}" if sel else ""
    return f"sum{grouping} (rate({metric}{selector}[$__rate_interval]))"


def p(q, metric, by="", sel=SEL):
    """Quantile q of a histogram over the selected processes."""
    grouping = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({grouping}) (rate({metric}_bucket{{{sel}}}[$__rate_interval])))"


def ts(title, targets, unit="short", desc=""):
    """A time series panel; targets are (expr, legend) pairs."""
    return {"type": "timeseries", "title": title, "description": desc, "unit": unit, "targets": targets}


def stat(title, targets, unit="short", desc=""):
    return {"type": "stat", "title": title, "description": desc, "unit": unit, "targets": targets}


def table(title, expr, desc=""):
    """An instant table of a metric's labels (build info)."""
    return {"type": "table", "title": title, "description": desc, "unit": "short", "targets": [(expr, "")],
            "instant": True}


def health(role):
    """The first row of every per-role dashboard: is it up, ready, and which build."""
    return [
        stat("Ready", [(f'nta_ready{{role="{role}", {SEL}}}', "{{instance}}")],
             desc="1 once the role reached NATS (and PostgreSQL); 0 while it waits (NTARoleNotReady)."),
        table("Build", f'nta_build_info{{role="{role}", {SEL}}}', desc="Version and git commit per process."),
    ]


def variables(role):
    q_job = f'label_values(nta_build_info{{role="{role}"}}, job)'
    q_inst = f'label_values(nta_build_info{{role="{role}", job=~"$job"}}, instance)'
    return [
        {"type": "query", "name": name, "label": name, "datasource": DS, "query": {"query": q, "refId": name},
         "definition": q, "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
         "current": {"text": "All", "value": "$__all"}, "sort": 1}
        for name, q in (("job", q_job), ("instance", q_inst))
    ]


def panel_json(i, spec, y):
    w, h = 12, (8 if spec["type"] == "timeseries" else 5)
    targets = [
        {"refId": chr(ord("A") + n), "datasource": DS, "expr": expr, "legendFormat": legend,
         **({"instant": True, "format": "table"} if spec.get("instant") else {"range": True})}
        for n, (expr, legend) in enumerate(spec["targets"])
    ]
    return {
        "id": i + 1, "type": spec["type"], "title": spec["title"], "description": spec["description"],
        "datasource": DS, "gridPos": {"x": (i % 2) * 12, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": spec["unit"]}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}} if spec["type"] == "timeseries" else {},
        "targets": targets,
    }


def dashboard(uid, title, description, panels, role=None):
    return {
        "uid": uid, "title": title, "description": description, "tags": ["nta"], "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "timezone": "", "graphTooltip": 1,
        "templating": {"list": variables(role) if role else []},
        "links": [{"type": "dashboards", "tags": ["nta"], "asDropdown": True, "title": "NTA"}],
        "panels": layout(panels),
    }


def layout(panels):
    """Two panels a row, each row as high as its taller panel."""
    out, y = [], 0
    for i in range(0, len(panels), 2):
        row = [panel_json(i + n, s, y) for n, s in enumerate(panels[i:i + 2])]
        y += max(p["gridPos"]["h"] for p in row)
        out += row
    return out


ALL = ""  # no selector: the pipeline view adds up every process

PIPELINE = dashboard("nta-pipeline", "NTA pipeline", "Records through every stage, backlogs, drops, streams, alerts.", [
    ts("Records per second by stage", [("nta:stage_records:rate1m", "{{stage}} {{flow}}")], "ops",
       "agent out = records acknowledged by JetStream; ingestor out = rows stored; windower in = records "
       "windowed, out = windows closed; predictor in = windows, out = predictions."),
    ts("Consumer backlog", [("nta:consumer_pending_messages:max", "{{role}} {{consumer}}")], "short",
       "Messages not yet delivered to each durable consumer (NTAConsumerBacklogGrowing)."),
    ts("Alerts opened per minute", [("sum by (class) (rate(nta_predictor_alerts_opened_total[$__rate_interval])) * 60",
                                     "{{class}}")], "short", "By class."),
    ts("Drops and late records per second", [
        (rate("nta_agent_dropped_records_total", "reason", ALL), "agent {{reason}}"),
        ("sum (rate(nta_agent_kernel_dropped_packets_total[$__rate_interval])) + "
         "sum (rate(nta_agent_interface_dropped_packets_total[$__rate_interval]))", "kernel/interface"),
        (rate("nta_windower_late_records_total", "", ALL), "late records"),
    ], "ops", "Records lost before storage or left out of their windows."),
    ts("Dead letters (last 10 minutes)", [("nta:deadletter:increase10m", "{{role}}")], "short",
       "Messages moved to NTA_DEADLETTER (NTADeadLetters)."),
    ts("Stream usage", [("nta:stream_usage:ratio", "{{stream}}")], "percentunit",
       "Fill against the stream's size or message limit (NTAStreamNearFull at 90%)."),
    ts("Stream size", [("max by (stream) (nta_stream_bytes)", "{{stream}}")], "bytes"),
    ts("Predictor inference p99", [("nta:predictor_inference_seconds:p99", "p99")], "s",
       "Per batch of windows (NTAInferenceSlow above 0.5 s)."),
    stat("Processes ready", [("sum by (role) (nta_ready)", "{{role}}")], "short",
         "Processes per role that reached NATS and PostgreSQL."),
    table("Builds running", "nta_build_info", "Version and git commit of every process, by role."),
])

AGENT = dashboard("nta-agent", "NTA agent", "Capture, decoding and publication to NTA_PACKETS.", health("agent") + [
    ts("Frames per second", [
        (rate("nta_agent_frames_captured_total"), "captured"),
        (rate("nta_agent_frames_decoded_total"), "decoded"),
        (f'{rate("nta_agent_frames_captured_total")} - {rate("nta_agent_frames_decoded_total")}', "malformed"),
    ], "ops"),
    ts("Records acknowledged per second", [(rate("nta_agent_records_acked_total", "instance"), "{{instance}}")], "ops"),
    ts("Records dropped per second", [(rate("nta_agent_dropped_records_total", "reason"), "{{reason}}")], "ops",
       "queue_full / stream_full: lost; shutdown: unsent at stop (NTAAgentQueueDrops)."),
    ts("Packets dropped before capture", [
        (rate("nta_agent_kernel_dropped_packets_total", "instance"), "kernel {{instance}}"),
        (rate("nta_agent_interface_dropped_packets_total", "instance"), "interface {{instance}}"),
    ], "ops", "libpcap's counters on a live capture (NTAAgentKernelDrops)."),
    ts("Send queue", [(f"sum by (instance) (nta_agent_queue_bytes{{{SEL}}})", "{{instance}}")], "bytes"),
    ts("Publications awaiting their PubAck", [(f"sum by (instance) (nta_agent_pending_acks{{{SEL}}})",
                                               "{{instance}}")], "short"),
    ts("Publish errors per second", [(rate("nta_agent_publish_errors_total", "kind"), "{{kind}}")], "ops"),
], role="agent")

INGESTOR = dashboard("nta-ingestor", "NTA ingestor", "NTA_PACKETS into PostgreSQL.", health("ingestor") + [
    ts("Rows stored per second", [(rate("nta_ingestor_rows_total", "instance"), "{{instance}}")], "ops"),
    ts("Batches per second", [
        (rate("nta_ingestor_batches_total"), "stored"),
        (rate("nta_ingestor_duplicate_batches_total"), "duplicates skipped"),
        (rate("nta_ingestor_rollup_batches_total"), "rolled up"),
    ], "ops"),
    ts("Consumer backlog", [(f"max by (consumer) (nta_ingestor_consumer_pending_messages{{{SEL}}})",
                             "{{consumer}}")], "short"),
    ts("Transaction latency p99", [
        (p(0.99, "nta_ingestor_copy_duration_seconds"), "COPY"),
        (p(0.99, "nta_ingestor_commit_duration_seconds"), "commit"),
        (p(0.99, "nta_ingestor_rollup_duration_seconds"), "rollup"),
    ], "s"),
    ts("Errors per second", [
        (rate("nta_ingestor_db_errors_total"), "database"),
        (rate("nta_ingestor_deadletter_total"), "dead letters"),
        (rate("nta_ingestor_rollup_skipped_total"), "rollup skipped"),
    ], "ops", "NTADatabaseErrors, NTADeadLetters."),
], role="ingestor")

WINDOWER = dashboard("nta-windower", "NTA windower", "Records into windows and features.", health("windower") + [
    ts("Records per second", [
        (rate("nta_windower_records_total"), "windowed"),
        (rate("nta_windower_late_records_total"), "late"),
        (rate("nta_windower_already_emitted_records_total"), "already emitted (replay)"),
    ], "ops", "Late records are counted and left out (NTAWindowerLateRecords)."),
    ts("Windows closed per second", [(rate("nta_windower_windows_total", "size, view"), "{{size}} {{view}}")], "ops",
       "NTANoWindowsClosing when records arrive and none closes."),
    ts("Open keys and held batches", [
        (f"sum (nta_windower_open_keys{{{SEL}}})", "open keys"),
        (f"sum (nta_windower_held_messages{{{SEL}}})", "held batches"),
    ], "short"),
    ts("Consumer backlog", [(f"max by (consumer) (nta_windower_consumer_pending_messages{{{SEL}}})",
                             "{{consumer}}")], "short"),
    ts("Flush latency p99", [(p(0.99, "nta_windower_flush_duration_seconds"), "p99")], "s",
       "Publish + store + checkpoint of closed windows."),
    ts("Partitions", [
        (f"sum by (instance) (nta_windower_partitions_held{{{SEL}}})", "held {{instance}}"),
        (f"max (nta_windower_members{{{SEL}}})", "members"),
    ], "short"),
    ts("Errors per second", [
        (rate("nta_windower_db_errors_total"), "database"),
        (rate("nta_windower_publish_errors_total"), "publish"),
        (rate("nta_windower_deadletter_total"), "dead letters"),
        (rate("nta_windower_missed_messages_total"), "missed (stream limits)"),
    ], "ops"),
], role="windower")

PREDICTOR = dashboard("nta-predictor", "NTA predictor", "Windows into verdicts and alerts.", health("predictor") + [
    ts("Windows per second", [(rate("nta_predictor_windows_total", "view"), "{{view}}")], "ops"),
    ts("Predictions per second", [(rate("nta_predictor_predictions_total", "label"), "{{label}}")], "ops"),
    ts("Alerts per minute", [
        (f'{rate("nta_predictor_alerts_opened_total", "class")} * 60', "opened {{class}}"),
        (f'{rate("nta_predictor_alerts_closed_total")} * 60', "closed"),
    ], "short"),
    ts("Inference latency", [
        (p(0.99, "nta_predictor_inference_duration_seconds"), "p99"),
        (p(0.5, "nta_predictor_inference_duration_seconds"), "p50"),
    ], "s", "Per batch of windows (NTAInferenceSlow)."),
    ts("Consumer backlog", [(f"max by (consumer) (nta_predictor_consumer_pending_messages{{{SEL}}})",
                             "{{consumer}}")], "short"),
    ts("Alert events relayed per second", [
        (rate("nta_predictor_alert_events_published_total"), "published"),
        (rate("nta_predictor_alert_publish_errors_total"), "publish errors"),
    ], "ops", "From the alert_events outbox to NTA_ALERTS."),
    ts("Errors per second", [
        (rate("nta_predictor_db_errors_total"), "database"),
        (rate("nta_predictor_alert_outbox_errors_total"), "outbox"),
        (rate("nta_predictor_deadletter_total"), "dead letters"),
    ], "ops"),
], role="predictor")

DASHBOARD = dashboard("nta-dashboard", "NTA dashboard role", "The web dashboard's connections and logins.",
                      health("dashboard") + [
    ts("Open connections and live clients", [
        (f"sum (nta_dashboard_open_connections{{{SEL}}})", "connections"),
        (f"sum (nta_dashboard_sse_clients{{{SEL}}})", "live-alert clients"),
    ], "short"),
    ts("Logins refused per second", [
        (rate("nta_dashboard_login_failures_total"), "failures"),
        (rate("nta_dashboard_login_lockouts_total"), "lockouts"),
        (rate("nta_dashboard_login_refused_total"), "refused (locked out)"),
    ], "ops", "A rise is a password guessing attempt."),
    ts("Connections refused per second", [
        (rate("nta_dashboard_connections_refused_total"), "max_connections"),
        (rate("nta_dashboard_header_timeouts_total"), "header timeouts"),
        (rate("nta_dashboard_sse_refused_total"), "live streams (max_sse_streams)"),
    ], "ops"),
], role="dashboard")

NOTIFIER = dashboard("nta-notifier", "NTA notifier", "Alert events to webhook, Telegram, syslog and e-mail.",
                     health("notifier") + [
    ts("Notifications per second", [
        (rate("nta_notifier_sent_total", "output"), "sent {{output}}"),
        (rate("nta_notifier_failed_total", "output"), "failed {{output}}"),
        (rate("nta_notifier_retried_total", "output"), "retried {{output}}"),
    ], "ops"),
    ts("Events not notified per second", [(rate("nta_notifier_skipped_total", "reason"), "{{reason}}")], "ops"),
    ts("Alert to notification latency p99", [(p(0.99, "nta_notifier_latency_seconds", "output"), "{{output}}")], "s"),
    ts("Consumer backlog", [(f"max by (consumer) (nta_notifier_consumer_pending_messages{{{SEL}}})",
                             "{{consumer}}")], "short"),
    ts("Dead letters per second", [
        (rate("nta_notifier_deadletter_total", "output"), "{{output}}"),
        (rate("nta_notifier_malformed_total"), "malformed events"),
    ], "ops"),
], role="notifier")

DASHBOARDS = {"pipeline": PIPELINE, "agent": AGENT, "ingestor": INGESTOR, "windower": WINDOWER,
              "predictor": PREDICTOR, "dashboard": DASHBOARD, "notifier": NOTIFIER}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, d in DASHBOARDS.items():
        path = OUT / f"nta-{name}.json"
        text = json.dumps(d, indent=2) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        sys.exit(f"out of date (run python3 {Path(__file__).name}): {', '.join(stale)}")


if __name__ == "__main__":
    main()
