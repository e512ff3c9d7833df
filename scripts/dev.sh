#!/usr/bin/env bash
# Builds cairn and runs it on 127.0.0.1 with the embedded store under
# .cairn/data (HTTP and Eureka API on 127.0.0.1:8761, DNS on 127.0.0.1:8600).
# Extra arguments go to `cairn dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/cairn ./cmd/cairn
exec bin/cairn dev "$@"
