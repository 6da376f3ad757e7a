#!/usr/bin/env bash
# Leak check of the Rust core: runs turbogroup-core's test binaries under
# valgrind's memcheck and fails on any definite leak or memory error.
#   bash tests/leakcheck.sh [extra args for the test binary, e.g. a test name]
# Skips (exit 0) when valgrind is not installed: it is an extra check, and
# `apt-get install valgrind` provides it. The pyo3 binding is checked from
# Python instead (tests/unit/test_core_leaks.py): under valgrind the whole
# interpreter would be reported.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "leakcheck: valgrind is not installed, skipping (apt-get install valgrind)"
    exit 0
fi

# The executables cargo built, from its JSON messages (the file names carry
# a hash, so they cannot be spelled here).
mapfile -t binaries < <(
    cargo test --locked -p turbogroup-core --no-run --message-format=json |
        python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
        print(msg["executable"])
'
)
if [ ${#binaries[@]} -eq 0 ]; then
    echo "leakcheck: cargo built no test binary for turbogroup-core" >&2
    exit 1
fi

status=0
for binary in "${binaries[@]}"; do
    echo "leakcheck: valgrind $binary"
    # "Possibly lost" and "still reachable" blocks are the test harness's
    # threads and statics at exit, not leaks: only definite ones fail.
    valgrind --quiet --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite --error-exitcode=1 \
        "$binary" --test-threads=2 "$@" || status=1
done
if [ "$status" -ne 0 ]; then
    echo "leakcheck: valgrind found a definite leak or a memory error (see above)" >&2
else
    echo "leakcheck: no definite leak and no memory error"
fi
exit "$status"
