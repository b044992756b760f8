#!/usr/bin/env bash
# node16.sh prints the path of a Node.js v16.20.2 binary, for running the npm
# launcher tests under the oldest Node that package.json's "engines" accepts.
#
# The binary comes from the npm registry (node-<os>-<arch>@16.20.2, whose
# bin/node is the official build), is fetched once into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/codex-responses-api-proxy/node-v16.20.2/
# and reused afterwards. Progress goes to stderr; stdout carries only the path.
#
# Usage: "$(scripts/node16.sh)" --test npm/test/launcher.test.mjs
set -euo pipefail

readonly version=16.20.2

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "node16.sh: error: no Node $version package for OS $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "node16.sh: error: no Node $version package for CPU $(uname -m)" >&2; exit 1 ;;
esac

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/codex-responses-api-proxy"
dir="$cache_root/node-v$version"
node="$dir/bin/node"

if [[ ! -x "$node" ]]; then
  mkdir -p "$cache_root"
  # Unpack next to the final location, then rename: a concurrent or
  # interrupted run never leaves a half-written cache behind.
  tmp="$(mktemp -d "$cache_root/.node-v$version.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "node16.sh: fetching node-$os-$arch@$version from the npm registry" >&2
  tarball="$(cd "$tmp" && npm pack --silent "node-$os-$arch@$version")"
  tar -xzf "$tmp/$tarball" -C "$tmp"
  rm -rf "$dir" # a leftover without an executable bin/node
  if ! mv "$tmp/package" "$dir" && [[ ! -x "$node" ]]; then
    echo "node16.sh: error: cannot install Node $version into $dir" >&2
    exit 1
  fi
fi

got="$("$node" --version)"
if [[ "$got" != "v$version" ]]; then
  echo "node16.sh: error: $node --version printed $got, want v$version" >&2
  exit 1
fi
echo "$node"
