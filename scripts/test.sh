#!/usr/bin/env bash
# One command from a fresh clone to a passing test suite: packages, release build
# (the CLI contract), then every unit and parity test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release
swift test
