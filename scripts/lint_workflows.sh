#!/usr/bin/env bash
# lint_workflows.sh: check .github/workflows/*.yml with the pinned actionlint
# (scripts/tools.sh) and our own rules; exits non-zero on any finding.
#
# Our rules, which actionlint does not check:
#   - every `uses:` names an action pinned to a full 40-hex commit SHA,
#     followed by a `# vX.Y.Z` comment saying which release that is;
#   - every checkout sets persist-credentials: false;
#   - release.yml runs the GoReleaser version that scripts/tools.sh pins;
#   - a workflow that attests (actions/attest-build-provenance) grants
#     id-token: write and attestations: write, which the action needs.
set -euo pipefail
cd "$(dirname "$0")/.."

shopt -s nullglob
workflows=(.github/workflows/*.yml)
((${#workflows[@]})) || {
	echo "lint_workflows: error: no .github/workflows/*.yml" >&2
	exit 1
}

actionlint=$(scripts/tools.sh actionlint)
# actionlint also runs ShellCheck and pyflakes on run: scripts when they are
# installed (GitHub's Ubuntu runners have ShellCheck; on Debian, install the
# package of that name); without them it still checks syntax, expressions
# and types.
"$actionlint" -no-color "${workflows[@]}"

fail=0
finding() {
	echo "lint_workflows: $*" >&2
	fail=1
}

for wf in "${workflows[@]}"; do
	while IFS= read -r line; do
		finding "$wf:${line%%:*}: action not pinned to a full commit SHA with a '# vX.Y.Z' comment"
	done < <(grep -nE '^\s*(-\s+)?uses:' "$wf" |
		grep -vE 'uses:\s+[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}\s+#\s+v[0-9]+\.[0-9]+\.[0-9]+\s*$' || true)
	checkouts=$(grep -cE 'uses:\s+actions/checkout@' "$wf" || true)
	unpersisted=$(grep -cE '^\s+persist-credentials:\s+false\s*$' "$wf" || true)
	if ((checkouts != unpersisted)); then
		finding "$wf: $checkouts checkouts but $unpersisted 'persist-credentials: false'"
	fi
	if grep -qE 'uses:\s+actions/attest-build-provenance@' "$wf"; then
		for perm in id-token attestations; do
			grep -qE "^\s+$perm:\s+write(\s|$)" "$wf" ||
				finding "$wf: attests build provenance but does not grant $perm: write"
		done
	fi
done

want=$(sed -nE 's/^readonly GORELEASER_VERSION=(v[0-9.]+)$/\1/p' scripts/tools.sh)
got=$(sed -nE 's/^\s+version:\s+(v[0-9.]+)\s*$/\1/p' .github/workflows/release.yml)
if [[ -z $want || $got != "$want" ]]; then
	finding "release.yml runs GoReleaser \"$got\", scripts/tools.sh pins \"$want\""
fi

exit "$fail"
