#!/usr/bin/env bash
# e2e_npm.sh: end-to-end test of the npm package that scripts/snapshot.sh
# staged into dist/npm/. Run scripts/snapshot.sh first.
#
# It installs the tarball with `npm install -g` into a temporary prefix
# (offline: the package has no dependencies), then, once through the
# installed `codex-responses-api-proxy` command (this machine's Node) and
# once through its launcher under Node 16 (scripts/node16.sh), the smoke
# test of scripts/platforms/smoke.py: `--version` prints the package version
# (so the stamped version and the npm version agree), a key piped on stdin,
# server-info, per-event streaming from a fake upstream, two 403s,
# `curl --fail .../shutdown` exit 0, and the key in no output.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
	echo "e2e_npm: error: $*" >&2
	exit 1
}

shopt -s nullglob
tarballs=(dist/npm/*.tgz)
((${#tarballs[@]} == 1)) || die "want exactly one dist/npm/*.tgz, found ${#tarballs[@]}: run scripts/snapshot.sh first"

node16=$(scripts/node16.sh)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_npm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "e2e_npm: npm install -g ${tarballs[0]}" >&2
npm install --global --prefix "$tmp/prefix" --offline --no-audit --no-fund --loglevel=error "$PWD/${tarballs[0]}" >&2
pkg=$tmp/prefix/lib/node_modules/@openai/codex-responses-api-proxy
[[ -x $tmp/prefix/bin/codex-responses-api-proxy ]] || die "npm install did not create bin/codex-responses-api-proxy"

# run LABEL CMD...: the smoke test (scripts/platforms/smoke.py) of CMD, with
# --version checked against the package's version.
run() {
	echo "e2e_npm: $1" >&2
	shift
	python3 scripts/platforms/smoke.py --version "$version" -- "$@"
}
version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$pkg/package.json")

run "installed command, $(node --version)" "$tmp/prefix/bin/codex-responses-api-proxy"
run "launcher under Node $("$node16" --version)" "$node16" "$pkg/bin/codex-responses-api-proxy.js"
echo "e2e_npm: passed" >&2
