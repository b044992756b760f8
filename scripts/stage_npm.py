#!/usr/bin/env python3
"""Stage the npm package from a GoReleaser dist/ directory and pack it.

Reads dist/artifacts.json (never a glob), takes the raw binary that
GoReleaser recorded for each of the six PLATFORMS, checks it against the
sha256 GoReleaser recorded for it, and copies it into a staged copy of npm/
at vendor/<triple>/codex-responses-api-proxy/<binary>, mode 0755. Then it sets
the package version, adds the repository's LICENSE, runs `npm pack` into the
output directory and prints the tarball's path on stdout.

Raw binaries carry a checksum only when .goreleaser.yaml has an archive with
`formats: [binary]`: GoReleaser records those as type "Binary" with
extra.Format "binary" and extra.Checksum "sha256:<hex>". A missing platform,
a missing checksum or a mismatch is an error: never a smaller package.

Usage: python3 scripts/stage_npm.py [--dist dist] [--npm-dir npm]
                                     [--version X.Y.Z] [--out dist/npm]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

NAME = "codex-responses-api-proxy"


class Platform(NamedTuple):
    """One npm platform: its target triple, GoReleaser's goos/goarch, the binary's suffix."""

    triple: str
    goos: str
    goarch: str
    exe: str


# PLATFORMS lists every binary the package ships. The launcher's TARGETS table
# in npm/bin/codex-responses-api-proxy.js maps Node platforms to the same
# triples; scripts/tests/test_stage_npm.py fails when the two drift apart.
PLATFORMS = (
    Platform("x86_64-unknown-linux-musl", "linux", "amd64", ""),
    Platform("aarch64-unknown-linux-musl", "linux", "arm64", ""),
    Platform("x86_64-apple-darwin", "darwin", "amd64", ""),
    Platform("aarch64-apple-darwin", "darwin", "arm64", ""),
    Platform("x86_64-pc-windows-msvc", "windows", "amd64", ".exe"),
    Platform("aarch64-pc-windows-msvc", "windows", "arm64", ".exe"),
)

# Semantic Versioning 2.0.0, the grammar npm accepts (semver.org's regex).
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
SHA256 = re.compile(r"sha256:([0-9a-f]{64})")


class StageError(Exception):
    """A problem with the inputs that stops staging; its text is for the user."""


def read_json(path: Path) -> Any:
    """Return the parsed JSON in path, or raise StageError saying why not."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StageError(f"{path} not found: run GoReleaser first (scripts/snapshot.sh)") from None
    except (OSError, ValueError) as err:
        raise StageError(f"reading {path}: {err}") from None


def raw_binaries(artifacts: Any) -> list[dict[str, Any]]:
    """Return the artifacts.json entries for raw binaries from a `formats: [binary]` archive."""
    if not isinstance(artifacts, list):
        raise StageError("artifacts.json does not hold a list of artifacts")
    return [
        a
        for a in artifacts
        if isinstance(a, dict)
        and a.get("type") == "Binary"
        and isinstance(a.get("extra"), dict)
        and a["extra"].get("Format") == "binary"
    ]


def select(binaries: list[dict[str, Any]], platform: Platform) -> dict[str, Any]:
    """Return the one binary artifact for platform, or raise StageError."""
    found = [a for a in binaries if a.get("goos") == platform.goos and a.get("goarch") == platform.goarch]
    where = f"{platform.goos}/{platform.goarch} ({platform.triple})"
    if not found:
        raise StageError(
            f"artifacts.json has no raw binary for {where}: .goreleaser.yaml must build it "
            "and have an archive with formats: [binary]"
        )
    if len(found) > 1:
        names = ", ".join(sorted(str(a.get("name")) for a in found))
        raise StageError(f"artifacts.json has {len(found)} raw binaries for {where}: {names}")
    artifact = found[0]
    want = NAME + platform.exe
    if Path(str(artifact.get("path", ""))).name != want:
        raise StageError(f"the binary for {where} is {artifact.get('path')!r}, want a file named {want!r}")
    return artifact


def verified_bytes(artifact: dict[str, Any], root: Path) -> bytes:
    """Return the artifact's content after checking it against its recorded sha256.

    Relative paths in artifacts.json are relative to the directory GoReleaser
    ran in, which is root, the parent of its dist directory.
    """
    match = SHA256.fullmatch(str(artifact["extra"].get("Checksum", "")))
    if match is None:
        raise StageError(
            f"artifacts.json records no sha256 checksum for {artifact.get('name')!r} "
            f"(extra.Checksum is {artifact['extra'].get('Checksum')!r})"
        )
    path = root / artifact["path"]
    try:
        data = path.read_bytes()
    except OSError as err:
        raise StageError(f"reading {artifact.get('name')!r}: {err}") from None
    got = hashlib.sha256(data).hexdigest()
    if got != match.group(1):
        raise StageError(f"{path}: sha256 is {got}, but GoReleaser recorded {match.group(1)}")
    return data


def stage(dist: Path, npm_dir: Path, version: str, staged: Path) -> None:
    """Fill staged with a copy of npm_dir, the six verified binaries, LICENSE and version."""
    binaries = raw_binaries(read_json(dist / "artifacts.json"))
    # Select and verify everything before copying anything.
    contents = {p: verified_bytes(select(binaries, p), dist.parent) for p in PLATFORMS}

    try:
        shutil.copytree(npm_dir, staged, ignore=shutil.ignore_patterns("vendor", "node_modules"))
        shutil.copyfile(npm_dir.parent / "LICENSE", staged / "LICENSE")
    except OSError as err:
        raise StageError(f"copying {npm_dir} and the repository's LICENSE: {err}") from None
    for platform, data in contents.items():
        target = staged / "vendor" / platform.triple / NAME / (NAME + platform.exe)
        target.parent.mkdir(parents=True)
        target.write_bytes(data)
        target.chmod(0o755)

    manifest = staged / "package.json"
    package = read_json(manifest)
    package["version"] = version
    manifest.write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")


def pack(staged: Path, out: Path) -> Path:
    """Run `npm pack` in staged, writing the tarball into out; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise StageError("npm not found on PATH")
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "pack", "--json", "--ignore-scripts", "--pack-destination", str(out.resolve())],
        cwd=staged,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StageError(f"npm pack failed with exit code {result.returncode}")
    try:
        (entry,) = json.loads(result.stdout)
        return out / entry["filename"]
    except (ValueError, TypeError, KeyError) as err:
        raise StageError(f"cannot read the output of npm pack --json: {err}") from None


def default_version(dist: Path) -> str:
    """Return the version GoReleaser wrote to dist/metadata.json."""
    metadata = read_json(dist / "metadata.json")
    version = metadata.get("version") if isinstance(metadata, dict) else None
    if not isinstance(version, str) or not version:
        raise StageError(f"{dist / 'metadata.json'} has no \"version\"")
    return version


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; argparse handles --help and usage errors."""
    parser = argparse.ArgumentParser(
        prog="stage_npm",
        description="Stage the npm package from GoReleaser's dist/ and run npm pack. "
        "Prints the tarball's path.",
    )
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="GoReleaser's dist directory (default: %(default)s)")
    parser.add_argument("--npm-dir", type=Path, default=Path("npm"), help="the npm package sources (default: %(default)s)")
    parser.add_argument("--version", help="package version (default: \"version\" from DIST/metadata.json)")
    parser.add_argument("--out", type=Path, default=Path("dist/npm"), help="where npm pack writes the tarball (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Stage and pack; return the exit status, reporting errors on stderr."""
    args = parse_args(argv)
    try:
        version = args.version if args.version is not None else default_version(args.dist)
        if not SEMVER.fullmatch(version):
            raise StageError(f"version {version!r} is not a semantic version (X.Y.Z[-pre][+build])")
        with tempfile.TemporaryDirectory(prefix="stage_npm.") as tmp:
            staged = Path(tmp) / "package"
            stage(args.dist, args.npm_dir, version, staged)
            tarball = pack(staged, args.out)
    except StageError as err:
        print(f"stage_npm: error: {err}", file=sys.stderr)
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main())
