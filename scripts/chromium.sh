#!/usr/bin/env bash
# chromium.sh prints the path of a headless-capable Chromium from Debian's
# packages, installing it with apt-get on first use. The browser test of
# --allow-origin (go/cmd/codex-responses-api-proxy/browser_test.go) runs it.
#
#   E2E_CHROMIUM="$(scripts/chromium.sh)" go test ./cmd/...
#
# stdout carries nothing but the path; progress goes to stderr. Debian's
# security archive keeps only the newest build of a package, so the pin below
# is installed when the archive still has it, and otherwise the newest build
# is installed and its version printed: bump the pin then.
set -euo pipefail

readonly pinned=156.0.8078.114-1~deb12u1

die() {
	echo "chromium: error: $*" >&2
	exit 1
}

installed() { dpkg-query -W -f='${db:Status-Abbrev} ${Version}' chromium 2>/dev/null | sed -n 's/^ii *//p'; }
available() { apt-cache madison chromium 2>/dev/null | awk -F' *[|] *' '{print $2}'; }

have=$(installed || true)
if [[ -z $have || $have != "$pinned" ]]; then
	command -v apt-get >/dev/null || die "no apt-get here: install Chromium and set E2E_CHROMIUM to its path"
	[[ $(id -u) -eq 0 ]] || die "installing Chromium needs root (apt-get)"
	# Other engineers' and CI's apt runs may hold the lock: wait for it.
	apt=(apt-get -o DPkg::Lock::Timeout=900)
	if ! available | grep -qxF "$pinned"; then
		echo "chromium: apt-get update" >&2
		"${apt[@]}" update >&2 || die "apt-get update failed"
	fi
	if available | grep -qxF "$pinned"; then
		echo "chromium: installing chromium $pinned" >&2
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends \
			"chromium=$pinned" "chromium-common=$pinned" >&2 || die "apt-get install chromium=$pinned failed"
	elif [[ -z $have ]]; then
		echo "chromium: $pinned is gone from the archive; installing the newest build" >&2
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends chromium >&2 ||
			die "apt-get install chromium failed"
	fi
	have=$(installed || true)
	[[ -n $have ]] || die "chromium is not installed after apt-get"
	[[ $have == "$pinned" ]] || echo "chromium: warning: using chromium $have, not the pinned $pinned" >&2
fi

bin=$(command -v chromium) || die "chromium $have is installed but not on PATH"
printf '%s\n' "$bin"
