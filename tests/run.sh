#!/usr/bin/env bash
# The whole test suite, from a fresh machine: README.md's test command.
#   bash tests/run.sh
# Installs and starts Redis, RabbitMQ and PostgreSQL on loopback when they
# are not running, builds the Rust extension, then runs every check: cargo fmt,
# clippy, cargo test, a valgrind leak check of the Rust core, ruff, mypy
# (and stubtest for the compiled module), pytest
# (unit, integration, compat, e2e, stress), then builds the wheel and sdist
# and tests the installed wheel on Python 3.10-3.13 (tests/wheels.sh).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 name=$2 tries=${3:-120}
    for _ in $(seq "$tries"); do
        port_open "$port" && return 0
        sleep 1
    done
    echo "$name did not open 127.0.0.1:$port" >&2
    return 1
}

ensure_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
    command -v valgrind >/dev/null || missing+=(valgrind)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}

ensure_redis() {
    port_open 6379 && return 0
    log "starting redis-server on 127.0.0.1:6379"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/turbogroup-tests.log
    wait_port 6379 redis-server 30
}

ensure_rabbitmq() {
    port_open 5672 && return 0
    log "starting rabbitmq-server on 127.0.0.1:5672"
    # Listen on loopback only; guest/guest is allowed there by default.
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    rabbitmq-server -detached
    wait_port 5672 rabbitmq-server 180
}

ensure_postgres() {
    port_open 5432 && return 0
    log "starting PostgreSQL on 127.0.0.1:5432"
    if ! command -v pg_ctlcluster >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -1)
    # The tests connect as postgres over loopback without a password.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q "turbogroup tests" "$hba"; then
        sed -i '1i host all postgres 127.0.0.1/32 trust  # turbogroup tests' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_port 5432 postgresql 60
}

ensure_packages
ensure_redis
ensure_rabbitmq
ensure_postgres

log "building and installing turbogroup with its test dependencies"
python -m pip install --quiet ".[test]"

log "cargo fmt / clippy / test"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked -p turbogroup-core
# the binding's own unit tests (those that need no interpreter)
cargo test --locked -p turbogroup --lib

log "leak check of the Rust core (valgrind)"
bash tests/leakcheck.sh

log "ruff"
ruff check python tests benches
ruff format --check python tests benches

log "mypy, and the _core stub checked against the compiled module"
python -m mypy
python -m mypy.stubtest turbogroup._core

log "pytest"
python -m pytest tests "$@"

log "wheels: build, then install and test on Python 3.10-3.13"
bash tests/wheels.sh
