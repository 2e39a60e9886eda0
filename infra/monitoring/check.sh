#!/usr/bin/env bash
# Static checks of the monitoring kit (CI runs this after lint; a few seconds):
#   - prometheus.yml and the rules load (`promtool check config` / `check rules`),
#   - every alert behaves as its unit tests say (`promtool test rules rules/tests/*.yml`),
#   - the dashboards are what grafana/dashboards.py writes, every panel queries the datasource
#     uid nta-prometheus, and every expression parses as PromQL (promtool checks each one as a
#     recording rule, with the Grafana variables replaced).
# That the expressions return data from a running NTA is crates/nta/tests/monitoring.rs.
set -euo pipefail
cd "$(dirname "$0")"
bash install-prometheus.sh

promtool check config prometheus.yml
promtool check rules rules/*.yml
promtool test rules rules/tests/*.yml
python3 grafana/dashboards.py --check

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 - "$TMP/dashboard-exprs.yml" grafana/dashboards/*.json <<'PY'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
rules, errors = [], []
for f in files:
    d = json.load(open(f))
    for v in d.get("templating", {}).get("list", []):
        if v.get("datasource", {}).get("uid") != "nta-prometheus":
            errors.append(f"{f}: variable {v.get('name')} does not use datasource uid nta-prometheus")
    for p in d["panels"]:
        where = f"{f}: panel {p.get('title')!r}"
        if p.get("datasource", {}).get("uid") != "nta-prometheus":
            errors.append(f"{where}: datasource uid is not nta-prometheus")
        if not p.get("targets"):
            errors.append(f"{where}: no query")
        for t in p.get("targets", []):
            expr = t.get("expr", "").strip()
            if t.get("datasource", {}).get("uid") != "nta-prometheus":
                errors.append(f"{where}: query {t.get('refId')} does not use datasource uid nta-prometheus")
            if not expr:
                errors.append(f"{where}: query {t.get('refId')} is empty")
                continue
            expr = expr.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$instance", ".*")
            rules.append({"record": f"dashboard:expr{len(rules)}", "expr": expr})
if errors:
    sys.exit("\n".join(errors))
# JSON is YAML: promtool reads it as a rules file.
json.dump({"groups": [{"name": "dashboards", "rules": rules}]}, open(out, "w"), indent=1)
print(f"dashboards: {len(files)} files, {len(rules)} expressions")
PY
promtool check rules "$TMP/dashboard-exprs.yml" >/dev/null
echo "monitoring: OK"
