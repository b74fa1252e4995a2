#!/usr/bin/env bash
# One command from a fresh clone to the demo: packages, release build, `cfm demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release
exec "$(swift build -c release --show-bin-path)/cfm" demo "$@"
