#!/usr/bin/env bash
# Installs the system packages the build, the tests and the dev stack need, when they are missing.
# Runs apt-get only as root on Debian/Ubuntu; elsewhere it says what is missing and stops.
set -euo pipefail

# prometheus: for promtool, which `make lint` runs on deploy/prometheus/ (about 19 MB to download, 14 s to install).
packages=(librdkafka-dev kcat postgresql postgresql-contrib python3 python3-venv curl jq wrk hyperfine prometheus)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "missing system packages: ${missing[*]} (install them, or run this as root on Debian)" >&2
        exit 1
    fi
    echo "installing system packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Test-time Python tools: a JSON Schema validator and an OpenAPI validator nobody here wrote.
python_missing=()
python3 -c 'import jsonschema, referencing' 2>/dev/null || python_missing+=(jsonschema)
python3 -c 'import openapi_spec_validator' 2>/dev/null || python_missing+=(openapi-spec-validator)
# The reference Standard Webhooks library, for the signature interoperability test.
python3 -c 'import standardwebhooks' 2>/dev/null || python_missing+=(standardwebhooks==1.3.0)
if ((${#python_missing[@]})); then
    echo "installing Python packages: ${python_missing[*]}" >&2
    python3 -m pip install --quiet "${python_missing[@]}"
fi

# moto's S3-compatible server, the real S3-protocol peer of the recording store's tests (TestSupport/MotoServer), in a
# virtual environment of its own (it brings Flask, boto3 and their dependencies).
moto_version="5.2.6"
moto_venv="${MOTO_VENV:-$HOME/.cache/outbound-dialer/moto-$moto_version}"
if [[ ! -x "$moto_venv/bin/moto_server" ]]; then
    echo "installing moto[server] $moto_version into $moto_venv" >&2
    rm -rf "$moto_venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi
