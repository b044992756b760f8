#!/usr/bin/env bash
# The project's whole test suite, and what CI runs (.ci/run).
# Needs Go, Node.js with npm, and Python 3; every other tool is installed,
# pinned, by the scripts it calls. Each step prints a header; the first
# failure stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "go vet, on every release target"
for target in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64 freebsd/amd64; do
  (cd go && GOOS=${target%/*} GOARCH=${target#*/} go vet ./...)
done

step "go test -race"
# The --allow-origin test drives a real browser: Chromium from Debian's
# packages, installed on first use.
chromium=$(scripts/chromium.sh)
(cd go && E2E_CHROMIUM=$chromium go test -race -count=1 ./...)

step "fuzz targets, briefly"
# -fuzzminimizetime keeps the fuzzer running inputs instead of shrinking them.
# A count, not a duration: Go 1.26's fuzz coordinator can report its own
# -fuzztime deadline as a failure ("context deadline exceeded", no input
# written) on a loaded machine (golang/go#75804, fixed in Go 1.27). 50,000
# inputs take 2 to 10 s per target here.
for target in internal/apikey:FuzzReadKey internal/proxy:FuzzAllowRequest internal/proxy:FuzzHeaderFilter internal/server:FuzzReadRequest internal/httpsyntax:FuzzHeadRead internal/upstream:FuzzParseResponse internal/oidc:FuzzParseExchange internal/oidc:FuzzParseJWT internal/server:FuzzRequestParity internal/upstream:FuzzResponseParity internal/dump:FuzzBodyIndent; do
  (cd go && go test -run='^$' -fuzz="^${target#*:}\$" -fuzztime=50000x -fuzzminimizetime=1s "./${target%%:*}")
done

step "npm launcher, under this Node and Node 16"
# A file, not the directory: Node 21+ reads `--test DIR` as a file.
node --test npm/test/launcher.test.mjs
"$(scripts/node16.sh)" --test npm/test/launcher.test.mjs

step "Python staging script"
python3 -m unittest discover -s scripts/tests -t .

step "workflows (actionlint)"
scripts/lint_workflows.sh

step "snapshot build, reproducibility, npm end-to-end"
scripts/snapshot.sh
scripts/e2e_npm.sh

step "linux/arm64 under qemu, windows/amd64 under wine (the snapshot's binaries)"
scripts/platforms.sh

step "benchmark smoke"
scripts/bench.sh --smoke

echo "scripts/test.sh: all steps passed" >&2
