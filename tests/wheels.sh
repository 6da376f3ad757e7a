#!/usr/bin/env bash
# Builds the abi3 wheel and the sdist with maturin, then, on each of
# Python 3.10-3.13, installs the wheel into a fresh venv with no Rust
# toolchain on PATH and runs the smoke test against real Redis and RabbitMQ
# (tests/smoke/wheel_smoke.py). On 3.10, 3.12 and 3.13 it also runs the
# unit and integration suites against that installed wheel (3.11 runs the
# whole suite from tests/run.sh); the memory soak (marker "soak", two
# minutes) runs on 3.11 only.
#   bash tests/wheels.sh
# Interpreters are found under pyenv or on PATH as python3.X; one that is
# not there is reported and skipped (none of them can be downloaded here).
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_URL=${TURBOGROUP_TEST_REDIS_URL:-redis://127.0.0.1:6379}
AMQP_URL=${TURBOGROUP_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672//}
# A PATH without cargo, rustc or maturin: what a user without Rust has.
PLAIN_PATH=/usr/local/bin:/usr/bin:/bin

log() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*"; }

find_python() {
    local version=$1 root candidate
    root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
    # pyenv's own builds first: its shims on PATH fail for versions that
    # are installed but not selected.
    for candidate in "$root"/versions/"$version".*/bin/python"$version" \
        "$(command -v "python$version" || true)"; do
        if [ -x "$candidate" ] && "$candidate" -c 'pass' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

dist=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$dist" "$work"' EXIT

log "maturin: abi3 wheel and sdist"
python -m maturin build --release --locked --out "$dist"
python -m maturin sdist --out "$dist"
wheel=$(ls "$dist"/turbogroup-*-abi3-*.whl)
ls -l "$dist"

for version in 3.10 3.11 3.12 3.13; do
    if ! python=$(find_python "$version"); then
        log "Python $version: not installed (not on PATH, not under pyenv): SKIPPED"
        continue
    fi
    log "Python $version ($python): fresh venv, the wheel, no Rust on PATH"
    venv="$work/py$version"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "$wheel[test]"
    PATH="$venv/bin:$PLAIN_PATH" "$venv/bin/python" tests/smoke/wheel_smoke.py "$REDIS_URL" "$AMQP_URL"
    if [ "$version" != 3.11 ]; then
        log "Python $version: unit and integration suites against the installed wheel"
        PATH="$venv/bin:$PLAIN_PATH" "$venv/bin/python" -m pytest tests/unit tests/integration \
            -m "not soak" -p no:cacheprovider -q
    fi
done
