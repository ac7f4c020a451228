#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: the README's second command.
#
# Installs what the tests need (Debian's dnsmasq-base for the end-to-end tests when
# running as root; the package and its dev extras into ./.venv), then runs ruff, mypy
# and pytest; then the floors step: the sdist and wheel built with the oldest build
# backend we allow, checked (`twine check --strict`, then scripts/check_dist.py for
# the wheel's contents), installed into ./.venv-floors together with exactly the
# declared minimum of every dependency (scripts/floors.py), and the same suite run
# against that installed wheel. Between the two: other projects' suites with and
# without PYTHONDNSCACHE=1 (scripts/peer_suites.py). Extra arguments go to both pytest
# runs. FLOORS=0 and PEERS=0 skip those steps (never under CI=true).
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
PIP=(-m pip install -q --disable-pip-version-check)
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python "${PIP[@]}" -e '.[dev]' </dev/null

.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

# Other projects' own suites (urllib3, requests, httpx, aiohttp), without and with
# PYTHONDNSCACHE=1 in a loopback-only namespace: any test whose outcome differs fails.
# PEERS=0 skips it on a developer's machine (never under CI=true).
if [ "${PEERS:-1}" = 0 ] && [ "${CI:-}" != true ]; then
    echo "peer suites: skipped (PEERS=0)"
else
    .venv/bin/python scripts/peer_suites.py
fi

if [ "${FLOORS:-1}" = 0 ] && [ "${CI:-}" != true ]; then
    echo "floors: skipped (FLOORS=0)"
    exit 0
fi

echo "floors: building with the oldest allowed backend, testing with the declared minimums"
started=$SECONDS
if [ ! -x .venv-floors/bin/python ]; then
    "$PYTHON" -m venv .venv-floors
fi
constraints=.venv-floors/constraints.txt
{ .venv/bin/python scripts/floors.py; .venv/bin/python scripts/floors.py --build; } >"$constraints"
.venv-floors/bin/python "${PIP[@]}" -c "$constraints" hatchling build twine </dev/null
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
.venv-floors/bin/python -m build --no-isolation --outdir "$dist" . >/dev/null
.venv-floors/bin/python -m twine check --strict "$dist"/*
.venv-floors/bin/python scripts/check_dist.py "$dist"
wheel=$(echo "$dist"/*.whl)
.venv-floors/bin/python "${PIP[@]}" -c "$constraints" "$wheel[dev]" </dev/null
.venv-floors/bin/python "${PIP[@]}" --no-deps --force-reinstall "$wheel" </dev/null
# Run from the checkout's tests against the installed wheel, never against ./src.
.venv-floors/bin/python -m pytest -p no:cacheprovider "$@"
echo "floors: passed in $((SECONDS - started)) s with $(tr '\n' ' ' <"$constraints")"
