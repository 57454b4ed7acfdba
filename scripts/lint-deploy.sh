#!/usr/bin/env bash
# Validates the deployment files (deploy/, compose.yaml, .env.example) without Docker, Kubernetes, Asterisk,
# Prometheus or Grafana running: YAML syntax, compose.yaml against the Compose Specification schema, the Kubernetes
# manifests against the Kubernetes OpenAPI schemas and cross-reference rules, the Dockerfile's final stages, the
# Asterisk samples (scripts/lint-deploy.py); the Prometheus configuration, alert rules and their unit tests
# (promtool), and the Grafana dashboards and the metrics they and the alerts use (scripts/lint-monitoring.py).
# This wrapper provides the Python modules and promtool, runs every check, and fails if any failed.
#
# Needs python3 with PyYAML and jsonschema (>= 4.23) and the kubernetes-validate package. Missing modules are
# installed with pip into .tmp/lint-deploy/python (never into the system Python, so it also works where
# Debian marks the system Python as externally managed); as root on Debian, pip itself is installed with apt
# when absent. Set LINT_DEPLOY_ALLOW_NO_K8S_SCHEMA=1 to skip the OpenAPI validation when PyPI is unreachable.
# Needs promtool: as root on Debian it is installed with apt (package prometheus) when absent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so that the result does not change under our feet; the schemas for Kubernetes 1.25 to 1.37 are inside.
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
PYLIB="$PWD/.tmp/lint-deploy/python"

if ! command -v python3 >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null
    else
        echo "lint-deploy: python3 is missing (apt-get install python3)" >&2
        exit 1
    fi
fi

export PYTHONPATH="$PYLIB${PYTHONPATH:+:$PYTHONPATH}"

modules_present() {
    python3 - "$@" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import yaml, jsonschema, referencing  # noqa: F401
major, minor = (int(part) for part in version("jsonschema").split(".")[:2])
if (major, minor) < (4, 23):
    sys.exit(1)
if "--k8s" in sys.argv:
    import kubernetes_validate  # noqa: F401
PY
}

if ! modules_present --k8s; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            echo "lint-deploy: installing python3-pip" >&2
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
        fi
    fi
    if python3 -m pip --version >/dev/null 2>&1; then
        echo "lint-deploy: installing Python modules into ${PYLIB#"$PWD"/}" >&2
        mkdir -p "$PYLIB"
        packages=("$KUBERNETES_VALIDATE" "jsonschema>=4.23" "referencing" "PyYAML")
        if ! python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade \
            --target "$PYLIB" "${packages[@]}" >&2; then
            echo "lint-deploy: pip could not install ${packages[*]}" >&2
        fi
    fi
fi

if ! modules_present; then
    echo "lint-deploy: PyYAML and jsonschema>=4.23 are required (pip install PyYAML jsonschema)" >&2
    exit 1
fi
if ! modules_present --k8s && [[ "${LINT_DEPLOY_ALLOW_NO_K8S_SCHEMA:-0}" != 1 ]]; then
    echo "lint-deploy: $KUBERNETES_VALIDATE is required (or set LINT_DEPLOY_ALLOW_NO_K8S_SCHEMA=1)" >&2
    exit 1
fi

if ! command -v promtool >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "lint-deploy: installing prometheus (for promtool)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    else
        echo "lint-deploy: promtool is missing (apt-get install prometheus, or a Prometheus release archive)" >&2
        exit 1
    fi
fi

status=0
python3 scripts/lint-deploy.py || status=1
python3 scripts/lint-monitoring.py || status=1

# promtool prints every step; its output is shown only when a check fails.
promtool_check() {
    local output
    if output=$(promtool "$@" 2>&1); then
        return 0
    fi
    printf '%s\n' "$output" >&2
    echo "lint-deploy: promtool $* failed" >&2
    return 1
}
promtool_status=0
promtool_check check config deploy/prometheus/prometheus.yml || promtool_status=1
promtool_check check rules deploy/prometheus/alerts.yml || promtool_status=1
promtool_check test rules deploy/prometheus/alerts.test.yml || promtool_status=1
if ((promtool_status == 0)); then
    version=$(promtool --version 2>&1 | awk 'NR == 1 { print $3 }')
    echo "lint-deploy: promtool $version: prometheus.yml, alerts.yml and the tests of alerts.test.yml pass"
else
    status=1
fi
exit "$status"
