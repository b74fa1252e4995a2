#!/usr/bin/env bash
# One command from a fresh clone to a passing test suite: packages, release build
# (the CLI contract), every unit and parity test, then the command line end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release
swift test
bash scripts/check-cli.sh
bash scripts/check-clients.sh
