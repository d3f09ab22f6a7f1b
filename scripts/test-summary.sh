#!/usr/bin/env bash
# Prints a summary of a `go test` log (the non-verbose output): how many
# packages passed, failed or have no tests, and which tests failed.
# Usage: scripts/test-summary.sh build/test.log
set -euo pipefail

log=${1:?usage: test-summary.sh LOG}

ok=$(grep -cE '^ok[[:space:]]' "$log" || true)
nofiles=$(grep -cE '^\?[[:space:]].*\[no test files\]' "$log" || true)
mapfile -t failed_pkgs < <(grep -E '^FAIL[[:space:]]+[^[:space:]]' "$log" | awk '{print $2}' | sort -u || true)
mapfile -t failed_tests < <(grep -E '^[[:space:]]*--- FAIL: ' "$log" | sed -E 's/^[[:space:]]*--- FAIL: ([^ ]+).*/\1/' || true)

echo "== go test summary: ${ok} packages ok, ${#failed_pkgs[@]} failed, ${nofiles} without tests"
for p in "${failed_pkgs[@]}"; do
	echo "   FAIL ${p}"
done
if ((${#failed_tests[@]} > 0)); then
	echo "   failed tests (${#failed_tests[@]}): ${failed_tests[*]}"
fi
