#!/usr/bin/env bash
# Benchmark of issue 5, one command: builds the proxy, installs nginx from
# Debian's packages if missing (as root, with apt-get), fetches the reference
# Rust proxy once from npm into a cache outside the repository (about 170 MB;
# BENCH_REFERENCE=0 skips it), and runs go/internal/bench against direct,
# proxy, nginx and the reference, writing bench-results/bench.json.
# Extra arguments go to the benchmark (see `go run ./internal/bench --help`);
# with --smoke, nothing is installed or fetched.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/codex-responses-api-proxy-bench
reference_pkg=@openai/codex@0.169.0-linux-x64
reference_bin=package/vendor/x86_64-unknown-linux-musl/bin/codex

smoke=0
for a in "$@"; do
  [[ $a == --smoke || $a == -smoke ]] && smoke=1
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Built, not `go run`: the benchmark's exit code (1 broken, 2 target missed)
# must come through.
(cd "$root/go" && go build -o "$tmp/codex-responses-api-proxy" ./cmd/codex-responses-api-proxy &&
  go build -o "$tmp/bench" ./internal/bench)
args=(--proxy-bin "$tmp/codex-responses-api-proxy")

if [[ $smoke == 0 ]]; then
  if ! command -v nginx >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null
    else
      echo "bench: warning: nginx missing and not installable here; measuring without it" >&2
    fi
  fi
  if [[ ${BENCH_REFERENCE:-1} == 1 && $(uname -sm) == "Linux x86_64" ]]; then
    if [[ ! -x $cache/$reference_bin ]]; then
      mkdir -p "$cache"
      (cd "$cache" && tgz=$(npm pack --silent "$reference_pkg") && tar xzf "$tgz" "$reference_bin" && rm -f "$tgz")
    fi
    args+=(--target "reference=$cache/$reference_bin responses-api-proxy --server-info {server_info} --upstream-url {upstream}")
  fi
  mkdir -p "$root/bench-results"
  args+=(--json "$root/bench-results/bench.json")
fi

"$tmp/bench" "${args[@]}" "$@"
