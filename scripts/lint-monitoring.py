#!/usr/bin/env python3
"""Validates the monitoring files without Prometheus or Grafana running: run through scripts/lint-deploy.sh, which
also runs promtool (check config, check rules, test rules) on deploy/prometheus/.

What it checks (each problem is printed; the exit status is 1 if there was any):
  - every metric named in deploy/prometheus/alerts.yml and in the Grafana dashboards is exported by the services:
    found in the Swift sources of Services/ and Packages/Shared/Sources (Counter, Gauge, Timer, Recorder, Meter
    labels, which swift-prometheus uses as metric names unchanged; a Timer is a histogram: _bucket, _sum,
    _count), or is Prometheus' own `up`. A metric the services do not export yet (PLANNED_METRICS) may appear
    only in a dashboard panel whose description says which component will export it;
  - every alert has a severity (critical or warning), a summary and a description, and at least one test in
    deploy/prometheus/alerts.test.yml that expects it to fire;
  - every dashboard of deploy/grafana/dashboards/ is a JSON object with a title and a unique uid, panels with
    unique ids, and every panel but rows has targets whose PromQL names at least one metric and parses (promtool,
    with Grafana's variables replaced by sample values); the dashboard variables the queries use are defined;
  - compose.yaml mounts deploy/prometheus and deploy/grafana where prometheus.yml, the Grafana provisioning
    files and the home dashboard setting expect them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
COMPOSE = ROOT / "compose.yaml"
METRIC_SOURCES = [ROOT / "Services", ROOT / "Packages" / "Shared" / "Sources"]

# Series Prometheus itself adds for every scrape target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
# Metrics a dashboard may show before the services export them, with the component that will: the panel's
# description must name it.
PLANNED_METRICS: dict[str, str] = {}
SEVERITIES = {"critical", "warning"}
# Grafana's global variables that may appear in a query.
GRAFANA_GLOBALS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}

problems: list[str] = []
notes: list[str] = []
# (where, PromQL) of every dashboard target, for the syntax check.
dashboard_queries: list[tuple[str, str]] = []


def problem(where: str | Path, message: str) -> None:
    if isinstance(where, Path):
        where = str(where.relative_to(ROOT)) if where.is_relative_to(ROOT) else str(where)
    problems.append(f"{where}: {message}")


# MARK: - Metrics the services export


_instrument = re.compile(
    r"\b(Counter|FloatingPointCounter|Gauge|Timer|Recorder|Meter)\(\s*label:\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")


def exported_metrics() -> dict[str, str]:
    """Metric names the services expose on /metrics, with the source file that creates each."""
    found: dict[str, str] = {}
    for directory in METRIC_SOURCES:
        for path in sorted(directory.rglob("*.swift")) if directory.exists() else []:
            text = path.read_text(encoding="utf-8", errors="replace")
            for kind, name in _instrument.findall(text):
                where = str(path.relative_to(ROOT))
                # swift-metrics' Timer and aggregating Recorder become histograms in swift-prometheus.
                names = [f"{name}_bucket", f"{name}_sum", f"{name}_count"] if kind in ("Timer", "Recorder") else [name]
                for metric in names:
                    found.setdefault(metric, where)
    return found


# MARK: - PromQL


_keywords = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (identifiers that are not functions, keywords, label names
    or durations). A small scanner, not a parser: enough for the expressions written here."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:$.])([A-Za-z_:][A-Za-z0-9_:]*)(?![A-Za-z0-9_:])(?!\s*\()", text):
        if match.group(1).lower() not in _keywords:
            names.add(match.group(1))
    return names


def check_metrics(where: str | Path, context: str, expr: str, known: dict[str, str], planned_ok: bool) -> int:
    """Records unknown metrics of `expr`; returns how many metrics it names."""
    names = metric_names(expr)
    for name in sorted(names):
        if name in known or name in PROMETHEUS_SERIES:
            continue
        if name in PLANNED_METRICS and planned_ok:
            notes.append(f"{name} is not exported yet (planned: the {PLANNED_METRICS[name]})")
            continue
        hint = ""
        if f"{name}_count" in known:
            hint = " (a histogram: use _bucket, _sum or _count)"
        problem(where, f"{context}: metric {name} is not exported by the services{hint}")
    return len(names)


# MARK: - Alert rules


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        problem(path, f"cannot be read: {error}")
        return None


def check_alerts(known: dict[str, str]) -> None:
    rules = load_yaml(ALERTS)
    if not isinstance(rules, dict) or not isinstance(rules.get("groups"), list):
        problem(ALERTS, "must hold a `groups` list")
        return
    alerts: set[str] = set()
    for group in rules["groups"]:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record")
            context = f"group {group.get('name')}, rule {name}"
            if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
                problem(ALERTS, f"{context}: no expr")
                continue
            if check_metrics(ALERTS, context, rule["expr"], known, planned_ok=False) == 0:
                problem(ALERTS, f"{context}: its expr names no metric")
            if "alert" not in rule:
                continue
            alerts.add(rule["alert"])
            severity = (rule.get("labels") or {}).get("severity")
            if severity not in SEVERITIES:
                problem(ALERTS, f"{context}: labels.severity must be one of {sorted(SEVERITIES)}, not {severity!r}")
            annotations = rule.get("annotations") or {}
            for key in ("summary", "description"):
                if not str(annotations.get(key) or "").strip():
                    problem(ALERTS, f"{context}: needs annotations.{key}")
    notes.append(f"{len(alerts)} alerts in {ALERTS.relative_to(ROOT)}")

    tests = load_yaml(ALERT_TESTS)
    if not isinstance(tests, dict):
        problem(ALERT_TESTS, "is missing or not a mapping (promtool test rules file)")
        return
    if ALERTS.name not in (tests.get("rule_files") or []):
        problem(ALERT_TESTS, f"rule_files must list {ALERTS.name}")
    fired: set[str] = set()
    for test in tests.get("tests") or []:
        for case in test.get("alert_rule_test") or []:
            if case.get("exp_alerts"):
                fired.add(case.get("alertname"))
        for series in test.get("input_series") or []:
            selector = str(series.get("series", ""))
            check_metrics(ALERT_TESTS, "input series", selector, known, planned_ok=False)
    for alert in sorted(alerts - fired):
        problem(ALERT_TESTS, f"no test expects alert {alert} to fire")
    for alert in sorted(fired - alerts):
        problem(ALERT_TESTS, f"tests alert {alert}, which alerts.yml does not define")

    config = load_yaml(PROMETHEUS_CONFIG)
    if isinstance(config, dict) and ALERTS.name not in (config.get("rule_files") or []):
        problem(PROMETHEUS_CONFIG, f"rule_files must list {ALERTS.name}")


# MARK: - Grafana dashboards


def _panels(panels: list[Any]) -> list[dict]:
    """Every panel, with the panels of collapsed rows."""
    result = []
    for panel in panels:
        if isinstance(panel, dict):
            result.append(panel)
            result.extend(_panels(panel.get("panels") or []))
    return result


def check_dashboard(path: Path, known: dict[str, str], uids: dict[str, Path]) -> None:
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem(path, f"is not valid JSON: {error}")
        return
    if not isinstance(board, dict):
        problem(path, "must hold one JSON object (a dashboard)")
        return
    if not str(board.get("title") or "").strip():
        problem(path, "has no title")
    uid = board.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        problem(path, f"uid must be 1 to 40 letters, digits, - or _ (got {uid!r})")
    elif uid in uids:
        problem(path, f"uid {uid} is also the uid of {uids[uid].name}")
    else:
        uids[uid] = path
    variables = {v.get("name") for v in (board.get("templating") or {}).get("list") or [] if isinstance(v, dict)}
    panels = _panels(board.get("panels") or [])
    if not any(panel.get("type") != "row" for panel in panels):
        problem(path, "has no panels")
    ids: set[Any] = set()
    for panel in panels:
        title = panel.get("title") or "(untitled)"
        context = f"panel {title!r}"
        if panel.get("id") in ids:
            problem(path, f"{context}: id {panel.get('id')} is used twice")
        ids.add(panel.get("id"))
        if not isinstance(panel.get("gridPos"), dict):
            problem(path, f"{context}: no gridPos")
        if panel.get("type") == "row":
            continue
        if not panel.get("title"):
            problem(path, "a panel has no title")
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            problem(path, f"{context}: no targets")
            continue
        planned_ok = any(source in str(panel.get("description") or "") for source in PLANNED_METRICS.values())
        named = 0
        for target in targets:
            expr = target.get("expr") if isinstance(target, dict) else None
            if not isinstance(expr, str) or not expr.strip():
                problem(path, f"{context}: target {target.get('refId') if isinstance(target, dict) else target!r} "
                              "has no PromQL expr")
                continue
            named += check_metrics(path, context, expr, known, planned_ok)
            dashboard_queries.append((f"{path.name}, {context}, target {target.get('refId')}", expr))
            for variable in re.findall(r"\$\{?(\w+)", expr):
                if variable not in variables and variable not in GRAFANA_GLOBALS:
                    problem(path, f"{context}: uses ${variable}, which the dashboard does not define")
        if named == 0:
            problem(path, f"{context}: its targets name no metric")
        for reference in (panel.get("datasource"), *(t.get("datasource") for t in targets if isinstance(t, dict))):
            uid_ref = (reference or {}).get("uid", "") if isinstance(reference, dict) else ""
            for variable in re.findall(r"\$\{?(\w+)", str(uid_ref)):
                if variable not in variables:
                    problem(path, f"{context}: data source ${variable} is not a dashboard variable")


def check_dashboards(known: dict[str, str]) -> list[Path]:
    files = sorted(DASHBOARDS.glob("*.json")) if DASHBOARDS.exists() else []
    if not files:
        problem(DASHBOARDS, "holds no dashboard (*.json)")
    uids: dict[str, Path] = {}
    for path in files:
        check_dashboard(path, known, uids)
    notes.append(f"{len(files)} Grafana dashboards")
    return files


def check_query_syntax() -> None:
    """Parses every dashboard query with promtool (as recording rules), Grafana's variables replaced first."""
    promtool = shutil.which("promtool")
    if not promtool:
        problem("promtool", "is not installed: the dashboards' queries cannot be parsed (apt-get install prometheus)")
        return
    samples = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600",
               "__interval_ms": "15000", "__range_ms": "3600000"}
    rules = []
    for index, (_, expr) in enumerate(dashboard_queries):
        text = re.sub(r"\$\{?(\w+)\}?", lambda m: samples.get(m.group(1), ".*"), expr)
        rules.append({"record": f"dashboard:query:{index}", "expr": text})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", encoding="utf-8") as file:
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, file)
        file.flush()
        result = subprocess.run([promtool, "check", "rules", file.name], capture_output=True, text=True)
    if result.returncode == 0:
        notes.append(f"{len(rules)} dashboard queries parse (promtool)")
        return
    output = result.stdout + result.stderr
    failing = {int(n) for n in re.findall(r"dashboard:query:(\d+)", output)}
    for index in sorted(failing):
        where, expr = dashboard_queries[index]
        problem(DASHBOARDS, f"{where}: does not parse: {expr}")
    if not failing:
        problem(DASHBOARDS, f"promtool check rules on the dashboard queries failed: {output.strip()}")


# MARK: - Provisioning and compose.yaml


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str) and volume.startswith("./"):
            parts = volume.split(":")
            mounts[parts[1]] = parts[0][2:].rstrip("/")
    return mounts


def _host_path(mounts: dict[str, str], container_path: str) -> Path | None:
    """The repository file a container path resolves to through the mounts, or None."""
    for target, source in sorted(mounts.items(), key=lambda item: -len(item[0])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return ROOT / source / container_path[len(target):].lstrip("/")
    return None


def check_provisioning(dashboards: list[Path]) -> None:
    compose = load_yaml(COMPOSE)
    services = (compose or {}).get("services") or {}
    prometheus, grafana = services.get("prometheus"), services.get("grafana")
    if not isinstance(prometheus, dict) or not isinstance(grafana, dict):
        problem(COMPOSE, "needs the services prometheus and grafana (deploy/prometheus, deploy/grafana)")
        return

    mounts = _mounts(prometheus)
    config_flag = next((arg for arg in prometheus.get("command") or [] if str(arg).startswith("--config.file=")),
                       "--config.file=/etc/prometheus/prometheus.yml")
    config = _host_path(mounts, config_flag.split("=", 1)[1])
    if config is None or config.resolve() != PROMETHEUS_CONFIG.resolve():
        problem(COMPOSE, f"services.prometheus: {config_flag} must be {PROMETHEUS_CONFIG.relative_to(ROOT)} "
                         "through a bind mount")

    mounts = _mounts(grafana)
    for path in sorted((GRAFANA / "provisioning").rglob("*.yaml")):
        document = load_yaml(path)
        if not isinstance(document, dict) or document.get("apiVersion") != 1:
            problem(path, "must be a Grafana provisioning file with apiVersion: 1")
            continue
        for provider in document.get("providers") or []:
            directory = _host_path(mounts, str((provider.get("options") or {}).get("path", "")))
            if directory is None or directory.resolve() != DASHBOARDS.resolve():
                problem(path, f"provider {provider.get('name')}: options.path must be where compose.yaml mounts "
                              f"{DASHBOARDS.relative_to(ROOT)}")
        for source in document.get("datasources") or []:
            if source.get("type") == "prometheus" and "prometheus:9090" not in str(source.get("url")):
                problem(path, f"data source {source.get('name')}: url should be the compose service "
                              "http://prometheus:9090")
    if not (GRAFANA / "provisioning").exists() or _host_path(mounts, "/etc/grafana/provisioning") is None:
        problem(COMPOSE, "services.grafana: mount deploy/grafana/provisioning at /etc/grafana/provisioning")
    home = (grafana.get("environment") or {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        file = _host_path(mounts, str(home))
        if file is None or file.resolve() not in {path.resolve() for path in dashboards}:
            problem(COMPOSE, f"services.grafana: GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH {home} is not a "
                             "mounted dashboard")


def main() -> int:
    known = exported_metrics()
    if not known:
        problem("Services", "no swift-metrics instruments found: the metric checks would pass for nothing")
    notes.append(f"{len(known)} metric series names exported by the services")
    check_alerts(known)
    dashboards = check_dashboards(known)
    check_query_syntax()
    check_provisioning(dashboards)

    for note in dict.fromkeys(notes):
        print(f"lint-deploy: note: {note}")
    if problems:
        for line in dict.fromkeys(problems):
            print(f"lint-deploy: {line}", file=sys.stderr)
        print(f"lint-deploy: {len(set(problems))} problem(s) in the monitoring files", file=sys.stderr)
        return 1
    print("lint-deploy: monitoring files OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
