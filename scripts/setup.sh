#!/usr/bin/env bash
# Installs the Debian packages cfm builds against (idempotent; needs root on a fresh
# machine) and checks the Swift toolchain. Sourced or run by demo.sh, test.sh and .ci/run.
set -euo pipefail

# python3-zmq + numpy: the independent protocol client in the end-to-end test; python3-jsonschema: the result
# schema test; systemd: systemd-analyze verify of the units; curl: the metrics scrape test; gcc: the C client.
PACKAGES=(libzmq3-dev libopenblas-dev libyaml-dev libsystemd-dev libpng-dev libtiff-dev pkg-config python3 python3-yaml
          python3-zmq python3-numpy python3-jsonschema systemd curl gcc)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then
    export PATH=/opt/swift/usr/bin:$PATH
fi
command -v swift >/dev/null || { echo "setup: no Swift toolchain on PATH (expected Swift 6 at /opt/swift)" >&2; exit 1; }
