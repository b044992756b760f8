#!/usr/bin/env bash
# snapshot.sh: build a GoReleaser snapshot of the working tree into dist/,
# check it, and stage the npm package into dist/npm/.
#
#   bash scripts/snapshot.sh             # everything, as the test command runs it
#   bash scripts/snapshot.sh --no-repro  # skip the second build (fast local loop)
#
# Checks, each fatal:
#   - GoReleaser built HEAD (not its stand-in commit "none");
#   - dist/checksums.txt verifies with sha256sum -c and lists all six archives,
#     all six raw binaries and all six SBOMs, with the same sums
#     dist/artifacts.json records, and the README's download check
#     (sha256sum --check --ignore-missing, then tar -x) works on an archive;
#   - each SBOM lists exactly the Go toolchain and go/go.mod's modules at
#     go.mod's versions, for its binary's OS and CPU (scripts/check_sbom.py);
#   - each binary is for the OS and CPU its name says, the Linux ones are
#     static (no PT_INTERP, no PT_DYNAMIC) and the macOS ones load only
#     system libraries (macOS has no static executables);
#   - reproducibility: the same sources built again by GoReleaser in another
#     directory (a clone of HEAD, plus any uncommitted changes copied over)
#     give byte-identical binaries and SBOMs.
# Needs a git repository with at least one commit; a dirty tree is fine.
set -euo pipefail

repro=1
case ${1-} in
"") ;;
--no-repro) repro=0 ;;
*)
	echo "snapshot: error: unknown argument \"$1\" (usage: scripts/snapshot.sh [--no-repro])" >&2
	exit 2
	;;
esac

die() {
	echo "snapshot: error: $*" >&2
	exit 1
}
say() { echo "snapshot: $*" >&2; }

root=$(git rev-parse --show-toplevel 2>/dev/null) || die "not inside a git repository"
cd "$root"
head=$(git rev-parse --verify --quiet HEAD) || die "the repository has no commit yet; GoReleaser needs one"
[[ -f scripts/stage_npm.py ]] || die "scripts/stage_npm.py is missing: cannot stage the npm package"

goreleaser=$(scripts/tools.sh goreleaser)
# .goreleaser.yaml's sboms: runs cyclonedx-gomod from PATH: the pinned one.
cyclonedx=$(scripts/tools.sh cyclonedx-gomod)
export PATH="${cyclonedx%/*}:$PATH"

# Without a remote (a fresh `git init`, or this repository before it is
# pushed), GoReleaser's snapshot mode drops all git information: commit
# "none", zero timestamps, and a version that no longer names the commit.
# Lend it a remote URL through the environment, for its git calls only; the
# repository's config is not touched. The URL only feeds release templates.
gitenv=()
if ! git ls-remote --get-url >/dev/null 2>&1; then
	gitenv=(GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url
		GIT_CONFIG_VALUE_0=https://github.com/openai/codex-responses-api-proxy.git)
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/snapshot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# check DIST: the checks that need to parse files, in one place. Prints, on
# stdout, "GOOS_GOARCH PATH" for each of the six binaries.
check() {
	python3 - "$1" "$tmp/sums" "$head" <<'EOF'
import json, os, struct, sys

dist, sums, head = sys.argv[1], sys.argv[2], sys.argv[3]
BUILD_ID = "codex-responses-api-proxy"
TARGETS = {f"{o}_{a}" for o in ("linux", "darwin", "windows") for a in ("amd64", "arm64")}
ELF_MACHINE = {"amd64": 62, "arm64": 183}
MACHO_CPU = {"amd64": 0x01000007, "arm64": 0x0100000C}
PE_MACHINE = {"amd64": 0x8664, "arm64": 0xAA64}


def fail(msg):
    sys.exit(f"snapshot: error: {msg}")


def elf_static(data, arch, name):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        fail(f"{name}: not a 64-bit little-endian ELF file")
    machine, = struct.unpack_from("<H", data, 18)
    if machine != ELF_MACHINE[arch]:
        fail(f"{name}: ELF machine {machine}, want {ELF_MACHINE[arch]}")
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        ptype, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if ptype == 3:  # PT_INTERP: needs a dynamic loader
            fail(f"{name}: dynamically linked (has PT_INTERP)")
        if ptype == 2:  # PT_DYNAMIC: has shared-library dependencies
            fail(f"{name}: dynamically linked (has PT_DYNAMIC)")


def macho_system_only(data, arch, name):
    magic, cpu, _, _, ncmds = struct.unpack_from("<IIIII", data, 0)
    if magic != 0xFEEDFACF:
        fail(f"{name}: not a 64-bit little-endian Mach-O file")
    if cpu != MACHO_CPU[arch]:
        fail(f"{name}: Mach-O CPU {cpu:#x}, want {MACHO_CPU[arch]:#x}")
    off = 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        # LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB
        if cmd in (0xC, 0x80000018, 0x8000001F):
            start, = struct.unpack_from("<I", data, off + 8)
            lib = data[off + start:off + size].split(b"\0", 1)[0].decode()
            if not lib.startswith(("/usr/lib/", "/System/Library/")):
                fail(f"{name}: loads non-system library {lib!r}")
        off += size


def pe_machine(data, arch, name):
    if data[:2] != b"MZ":
        fail(f"{name}: not a PE file")
    pe, = struct.unpack_from("<I", data, 0x3C)
    machine, = struct.unpack_from("<H", data, pe + 4)
    if data[pe:pe + 4] != b"PE\0\0" or machine != PE_MACHINE[arch]:
        fail(f"{name}: PE machine {machine:#x}, want {PE_MACHINE[arch]:#x}")


with open(os.path.join(dist, "metadata.json"), encoding="utf-8") as f:
    commit = json.load(f)["commit"]
if commit != head:
    fail(f"GoReleaser built commit {commit!r}, want HEAD {head!r}")
with open(os.path.join(dist, "artifacts.json"), encoding="utf-8") as f:
    artifacts = json.load(f)

# dist/checksums.txt names the raw binaries by their release-asset name, and
# those files live in per-target directories: link every name into one
# directory so that plain `sha256sum -c` can verify the list.
os.makedirs(sums, exist_ok=True)
recorded = {}
for a in artifacts:
    checksum = (a.get("extra") or {}).get("Checksum")
    if checksum:
        recorded[a["name"]] = checksum.removeprefix("sha256:")
        link = os.path.join(sums, a["name"])
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.abspath(os.path.join(os.path.dirname(dist), a["path"])), link)
listed = {}
with open(os.path.join(dist, "checksums.txt"), encoding="utf-8") as f:
    for line in f:
        digest, name = line.split()
        listed[name] = digest
if listed != recorded:
    fail(f"checksums.txt and artifacts.json disagree: {sorted(set(listed.items()) ^ set(recorded.items()))}")
if len(listed) != 3 * len(TARGETS):
    fail(f"checksums.txt lists {len(listed)} files, want {3 * len(TARGETS)} (an archive, a binary and an SBOM per target)")

binaries = {}
for a in artifacts:
    if a["type"] == "Binary" and (a.get("extra") or {}).get("ID") == BUILD_ID:
        binaries[f"{a['goos']}_{a['goarch']}"] = os.path.join(os.path.dirname(dist), a["path"])
if set(binaries) != TARGETS:
    fail(f"built targets {sorted(binaries)}, want {sorted(TARGETS)}")
for target, path in sorted(binaries.items()):
    goos, arch = target.split("_")
    with open(path, "rb") as f:
        data = f.read()
    {"linux": elf_static, "darwin": macho_system_only, "windows": pe_machine}[goos](data, arch, path)
    print(target, path)
EOF
}

say "building the snapshot of $(git rev-parse --short HEAD) into dist/"
env "${gitenv[@]}" "$goreleaser" release --snapshot --clean >&2

check "$root/dist" >"$tmp/binaries"
(cd "$tmp/sums" && sha256sum --strict --quiet -c "$root/dist/checksums.txt") ||
	die "dist/checksums.txt does not verify"
say "checksums verify; linux binaries are static, darwin ones load only system libraries"
python3 scripts/check_sbom.py --dist dist --gomod go/go.mod

# The README's release-download check, as a user runs it: one archive and
# checksums.txt in an empty directory.
archive=$(cd dist && ls codex-responses-api-proxy_*_linux_amd64.tar.gz)
mkdir "$tmp/download"
cp "dist/$archive" dist/checksums.txt "$tmp/download/"
(cd "$tmp/download" && sha256sum --check --ignore-missing checksums.txt >&2 &&
	tar -xzf "$archive" codex-responses-api-proxy && [[ -x codex-responses-api-proxy ]]) ||
	die "the README's sha256sum --check and tar -x fail on $archive"

if ((repro)); then
	# Same sources, another directory: HEAD, plus uncommitted changes (tracked
	# and untracked, minus ignored files) so that a dirty tree compares equal.
	say "building again in $tmp/src to check reproducibility"
	git clone --quiet --no-checkout "$root" "$tmp/src"
	git -C "$tmp/src" checkout --quiet --detach "$head"
	{
		git diff --name-only --no-renames -z HEAD
		git ls-files --others --exclude-standard -z
	} | while IFS= read -r -d '' f; do
		if [[ -e $f || -L $f ]]; then
			mkdir -p "$tmp/src/$(dirname "$f")"
			cp -P "$f" "$tmp/src/$f"
		else
			rm -f "$tmp/src/$f"
		fi
	done
	(cd "$tmp/src" && env "${gitenv[@]}" "$goreleaser" release --snapshot --clean >&2)
	check "$tmp/src/dist" >"$tmp/binaries2"
	paste -d' ' "$tmp/binaries" "$tmp/binaries2" | while read -r target a _ b; do
		cmp -s "$a" "$b" || die "$target binary differs between the two builds: $a $b"
	done
	for sbom in dist/*.sbom.json; do
		cmp -s "$sbom" "$tmp/src/$sbom" || die "$sbom differs between the two builds"
	done
	say "the six binaries and their SBOMs are byte-identical across the two builds"
fi

say "staging the npm package into dist/npm/"
python3 scripts/stage_npm.py --dist dist --out dist/npm >&2
ls dist/npm/*.tgz >/dev/null 2>&1 || die "no npm tarball in dist/npm/"
say "done: $(cd dist/npm && ls ./*.tgz)"
