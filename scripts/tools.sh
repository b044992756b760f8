#!/usr/bin/env bash
# tools.sh NAME: print the path of the pinned build tool NAME, installing it
# from the Go module proxy into a per-user cache on first use.
#
#   scripts/tools.sh goreleaser   # GoReleaser, builds the release artefacts
#   scripts/tools.sh actionlint   # actionlint, checks .github/workflows
#   scripts/tools.sh cyclonedx-gomod  # writes the release SBOMs (GoReleaser sboms:)
#
# stdout carries nothing but the path, so callers can write
# "$(scripts/tools.sh goreleaser)"; progress goes to stderr. The versions
# below are the only place the tools are pinned: bump them here.
set -euo pipefail

# GoReleaser v2.15.1 is the newest that builds with our Go 1.26 toolchain.
readonly GORELEASER_PKG=github.com/goreleaser/goreleaser/v2
readonly GORELEASER_VERSION=v2.15.1
readonly ACTIONLINT_PKG=github.com/rhysd/actionlint/cmd/actionlint
readonly ACTIONLINT_VERSION=v1.7.12
readonly CYCLONEDX_GOMOD_PKG=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod
readonly CYCLONEDX_GOMOD_VERSION=v1.10.0

die() {
	echo "tools: error: $*" >&2
	exit 2
}

[[ $# -eq 1 ]] || die "usage: scripts/tools.sh goreleaser|actionlint|cyclonedx-gomod"

case $1 in
goreleaser) pkg=$GORELEASER_PKG version=$GORELEASER_VERSION ;;
actionlint) pkg=$ACTIONLINT_PKG version=$ACTIONLINT_VERSION ;;
cyclonedx-gomod) pkg=$CYCLONEDX_GOMOD_PKG version=$CYCLONEDX_GOMOD_VERSION ;;
*) die "unknown tool \"$1\" (known: goreleaser, actionlint, cyclonedx-gomod)" ;;
esac

name=$1
dir=${XDG_CACHE_HOME:-$HOME/.cache}/codex-responses-api-proxy/tools/$name-$version
bin=$dir/$name

if [[ ! -x $bin ]]; then
	mkdir -p "$dir"
	# Serialise concurrent first runs (e.g. lint and snapshot started together)
	# so one builds and the other waits; flock is absent on macOS, which only
	# ever runs one of these at a time.
	if command -v flock >/dev/null; then
		exec 9>"$dir.lock"
		flock 9
	fi
	if [[ ! -x $bin ]]; then
		echo "tools: building $pkg@$version into $dir (first use only)" >&2
		# go install writes the binary under a temporary name and renames it,
		# so an interrupted build never leaves a half-written $bin behind.
		GOBIN=$dir go install "$pkg@$version" >&2
	fi
fi

[[ -x $bin ]] || die "$bin is missing after go install"
printf '%s\n' "$bin"
