#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: the README's second command.
#
# Installs what the tests need (Debian's dnsmasq-base for the end-to-end tests when
# running as root; the package and its dev extras into ./.venv), then runs ruff,
# mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# unbound (with unbound-control) and openssl: the shared resolver of the DoT/DoH and fleet
# tests (tests/unbound.py); policy-rc.d-less containers may try to start its service, which
# fails harmlessly: the tests start their own instances.
if [ "$(id -u)" = 0 ] && { [ ! -x /usr/sbin/dnsmasq ] || [ ! -x /usr/sbin/unbound ] || ! command -v openssl >/dev/null || ! command -v unshare >/dev/null || ! command -v ip >/dev/null; }; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends dnsmasq-base unbound openssl iproute2 util-linux </dev/null >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' </dev/null

.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
