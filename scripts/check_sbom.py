#!/usr/bin/env python3
"""check_sbom.py: check the SBOMs of a GoReleaser dist/ against go/go.mod.

    python3 scripts/check_sbom.py --dist dist --gomod go/go.mod [--go-version go1.26.8]

Every binary in dist/artifacts.json must have exactly one CycloneDX SBOM
(type "SBOM"), for its own OS and CPU, listed in checksums.txt, whose
components are exactly the Go standard library at the toolchain's version
(`go env GOVERSION` unless --go-version is given, and no older than go.mod's
`go` line) and the modules the binary links for that target (`go list -deps`
of the main package, so test-only requirements are not expected), each at the
version go.mod requires: nothing missing, nothing else. Today that is kong,
x/sys and x/crypto (x509roots/fallback). Standard library only;
scripts/snapshot.sh runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

BUILD_ID = "codex-responses-api-proxy"
MAIN_PACKAGE = "./cmd/codex-responses-api-proxy"

# linked(goos, goarch) -> the modules (path -> version) the binary links.
Linked = Callable[[str, str], dict[str, str]]


class SBOMError(Exception):
    """A check failed; the message says which and why."""


def read_gomod(path: Path) -> tuple[str, dict[str, str]]:
    """The `go` version and the required modules (path -> version) of a go.mod."""
    text = re.sub(r"//[^\n]*", "", path.read_text(encoding="utf-8"))
    go = re.search(r"^go\s+(\S+)\s*$", text, re.M)
    if not go:
        raise SBOMError(f"{path}: no go directive")
    requires: dict[str, str] = {}
    for block in re.findall(r"^require\s*\((.*?)^\)", text, re.M | re.S):
        for line in block.splitlines():
            if line.split():
                mod, version = line.split()[:2]
                requires[mod] = version
    for mod, version in re.findall(r"^require\s+(\S+)\s+(\S+)\s*$", text, re.M):
        requires[mod] = version
    return go.group(1), requires


def version_tuple(v: str) -> tuple[int, ...]:
    """go1.26.8 or 1.26 as (1, 26, 8) or (1, 26), for comparison."""
    return tuple(int(x) for x in re.findall(r"\d+", v.removeprefix("go").split("-")[0]))


def check_sbom(doc: dict, goos: str, goarch: str, go_version: str, requires: dict[str, str]) -> None:
    """Raise SBOMError unless doc lists exactly std@go_version and the modules in requires, for goos/goarch."""
    if doc.get("bomFormat") != "CycloneDX":
        raise SBOMError(f"bomFormat {doc.get('bomFormat')!r}, want 'CycloneDX'")
    want = {"std": go_version, **requires}
    got: dict[str, str] = {}
    for c in doc.get("components", []):
        name, version = c.get("name"), c.get("version")
        if name in got:
            raise SBOMError(f"component {name} listed twice")
        got[name] = version
        purl = c.get("purl", "")
        if f"goos={goos}" not in purl or f"goarch={goarch}" not in purl:
            raise SBOMError(f"component {name}: purl {purl!r} is not for {goos}/{goarch}")
    if got != want:
        missing = sorted(f"{k}@{v}" for k, v in want.items() if got.get(k) != v)
        extra = sorted(f"{k}@{v}" for k, v in got.items() if want.get(k) != v)
        raise SBOMError(f"components differ from go.mod: missing {missing}, unexpected {extra}")


def go_list_linked(module_dir: Path) -> Linked:
    """A Linked that asks `go list -deps` in module_dir, as GoReleaser builds (CGO_ENABLED=0)."""
    def linked(goos: str, goarch: str) -> dict[str, str]:
        env = {**os.environ, "GOOS": goos, "GOARCH": goarch, "CGO_ENABLED": "0"}
        out = subprocess.run(
            ["go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}", MAIN_PACKAGE],
            cwd=module_dir, env=env, check=True, capture_output=True, text=True).stdout
        return dict(line.split() for line in set(out.splitlines()) if line)
    return linked


def check_dist(dist: Path, gomod: Path, go_version: str, linked: Linked) -> int:
    """Check every binary's SBOM in dist; return how many were checked."""
    go_min, requires = read_gomod(gomod)
    if version_tuple(go_version) < version_tuple(go_min):
        raise SBOMError(f"toolchain {go_version} is older than go.mod's go {go_min}")
    artifacts = json.loads((dist / "artifacts.json").read_text(encoding="utf-8"))
    root = dist.parent
    targets = sorted({(a["goos"], a["goarch"]) for a in artifacts
                      if a["type"] == "Binary" and (a.get("extra") or {}).get("ID") == BUILD_ID})
    if not targets:
        raise SBOMError(f"{dist}/artifacts.json lists no binaries")
    sboms = [a for a in artifacts if a["type"] == "SBOM"]
    listed = {line.split()[1] for line in (dist / "checksums.txt").read_text(encoding="utf-8").splitlines() if line.strip()}
    by_name = {a["name"]: a for a in sboms}
    if len(by_name) != len(sboms) or len(sboms) != len(targets):
        raise SBOMError(f"{len(sboms)} SBOMs for {len(targets)} binaries: {sorted(by_name)}")
    for goos, goarch in targets:
        names = [n for n in by_name if n.endswith(f"_{goos}_{goarch}.sbom.json")]
        if len(names) != 1:
            raise SBOMError(f"{goos}/{goarch}: want one *_{goos}_{goarch}.sbom.json, got {names}")
        name = names[0]
        if name not in listed:
            raise SBOMError(f"{name} is not in checksums.txt")
        doc = json.loads((root / by_name[name]["path"]).read_text(encoding="utf-8"))
        modules = linked(goos, goarch)
        for mod, version in modules.items():
            if requires.get(mod) != version:
                raise SBOMError(f"{goos}/{goarch} links {mod}@{version}, go.mod requires {requires.get(mod)!r}")
        try:
            check_sbom(doc, goos, goarch, go_version, modules)
        except SBOMError as e:
            raise SBOMError(f"{name}: {e}") from None
    return len(targets)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the checks, report on stderr; 0 when all pass."""
    parser = argparse.ArgumentParser(prog="check_sbom", description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, required=True)
    parser.add_argument("--gomod", type=Path, required=True)
    parser.add_argument("--go-version", help="the toolchain that built dist/ (default: go env GOVERSION)")
    args = parser.parse_args(argv)
    go_version = args.go_version or subprocess.run(
        ["go", "env", "GOVERSION"], check=True, capture_output=True, text=True).stdout.strip()
    try:
        n = check_dist(args.dist, args.gomod, go_version, go_list_linked(args.gomod.parent))
    except (SBOMError, OSError, ValueError, KeyError) as e:
        print(f"check_sbom: error: {e}", file=sys.stderr)
        return 1
    print(f"check_sbom: {n} SBOMs list exactly {go_version} and the modules each binary links, at go.mod's versions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
