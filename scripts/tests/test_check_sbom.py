"""Tests for scripts/check_sbom.py, on a fake dist/ shaped like a GoReleaser
v2.15.1 snapshot with this repository's sboms: entry (CycloneDX documents as
cyclonedx-gomod v1.10.0 `bin -std` writes them, trimmed to what is checked).

Run from the repository root:  python3 -m unittest discover -s scripts/tests -t .
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_sbom", REPO / "scripts" / "check_sbom.py")
assert _spec is not None and _spec.loader is not None
check_sbom = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_sbom)

GO = "go1.26.8"
GOMOD = """module github.com/openai/codex-responses-api-proxy/go

go 1.26.0

require (
\tgithub.com/alecthomas/kong v1.17.0 // the CLI
\tgolang.org/x/crypto/x509roots/fallback v0.0.0-20261030153154-30a33513ff6d
\tgolang.org/x/sys v0.50.0
)

require github.com/coder/websocket v1.8.15
"""
LINKED = {
    "github.com/alecthomas/kong": "v1.17.0",
    "golang.org/x/crypto/x509roots/fallback": "v0.0.0-20261030153154-30a33513ff6d",
    "golang.org/x/sys": "v0.50.0",
}
TARGETS = [("linux", "amd64"), ("darwin", "arm64"), ("windows", "amd64")]
VERSION = "1.2.4-snapshot-0abc123"


def component(name: str, version: str, goos: str, goarch: str) -> dict:
    """One component as cyclonedx-gomod writes it."""
    return {"type": "library", "name": name, "version": version,
            "purl": f"pkg:golang/{name}@{version}?goarch={goarch}&goos={goos}&type=module"}


def sbom(goos: str, goarch: str, modules: dict[str, str] = LINKED, go: str = GO) -> dict:
    """A CycloneDX document for one binary."""
    comps = [component(n, v, goos, goarch) for n, v in sorted(modules.items())]
    return {"bomFormat": "CycloneDX", "specVersion": "1.6",
            "components": comps + [component("std", go, goos, goarch)]}


class CheckDistTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(self.tmp))
        self.dist = self.tmp / "dist"
        self.dist.mkdir()
        self.gomod = self.tmp / "go.mod"
        self.gomod.write_text(GOMOD, encoding="utf-8")
        self.docs = {t: sbom(*t) for t in TARGETS}
        self.linked = dict(LINKED)
        self.unlisted: set[str] = set()

    def run_check(self) -> int:
        """Write the fake dist/ and run check_dist on it."""
        artifacts, sums = [], []
        for (goos, goarch), doc in self.docs.items():
            artifacts.append({"name": "codex-responses-api-proxy", "path": f"dist/b_{goos}_{goarch}/codex-responses-api-proxy",
                              "goos": goos, "goarch": goarch, "type": "Binary", "extra": {"ID": "codex-responses-api-proxy"}})
            name = f"codex-responses-api-proxy_{VERSION}_{goos}_{goarch}.sbom.json"
            data = json.dumps(doc).encode()
            (self.dist / name).write_bytes(data)
            artifacts.append({"name": name, "path": f"dist/{name}", "type": "SBOM", "extra": {"ID": "binary"}})
            if name not in self.unlisted:
                sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
        (self.dist / "artifacts.json").write_text(json.dumps(artifacts), encoding="utf-8")
        (self.dist / "checksums.txt").write_text("".join(sums), encoding="utf-8")
        return check_sbom.check_dist(self.dist, self.gomod, GO, lambda goos, goarch: dict(self.linked))

    def assertFails(self, needle: str) -> None:
        with self.assertRaises(check_sbom.SBOMError) as cm:
            self.run_check()
        self.assertIn(needle, str(cm.exception))

    def test_good_dist_passes(self) -> None:
        self.assertEqual(self.run_check(), len(TARGETS))

    def test_missing_module(self) -> None:
        mods = {k: v for k, v in LINKED.items() if k != "golang.org/x/sys"}
        self.docs[("linux", "amd64")] = sbom("linux", "amd64", mods)
        self.assertFails("missing ['golang.org/x/sys@v0.50.0']")

    def test_extra_module(self) -> None:
        self.docs[("darwin", "arm64")] = sbom("darwin", "arm64", {**LINKED, "github.com/coder/websocket": "v1.8.15"})
        self.assertFails("unexpected ['github.com/coder/websocket@v1.8.15']")

    def test_wrong_version(self) -> None:
        self.docs[("linux", "amd64")] = sbom("linux", "amd64", {**LINKED, "github.com/alecthomas/kong": "v1.16.0"})
        self.assertFails("unexpected ['github.com/alecthomas/kong@v1.16.0']")

    def test_wrong_go_version(self) -> None:
        self.docs[("windows", "amd64")] = sbom("windows", "amd64", go="go1.26.0")
        self.assertFails("missing ['std@go1.26.8']")

    def test_wrong_platform(self) -> None:
        doc = sbom("linux", "amd64")
        self.docs[("darwin", "arm64")] = doc
        self.assertFails("is not for darwin/arm64")

    def test_binary_without_sbom(self) -> None:
        self.run_check()
        artifacts = json.loads((self.dist / "artifacts.json").read_text(encoding="utf-8"))
        artifacts.append({"name": "codex-responses-api-proxy", "path": "dist/b_linux_arm64/codex-responses-api-proxy",
                          "goos": "linux", "goarch": "arm64", "type": "Binary", "extra": {"ID": "codex-responses-api-proxy"}})
        (self.dist / "artifacts.json").write_text(json.dumps(artifacts), encoding="utf-8")
        with self.assertRaises(check_sbom.SBOMError) as cm:
            check_sbom.check_dist(self.dist, self.gomod, GO, lambda goos, goarch: dict(self.linked))
        self.assertIn("3 SBOMs for 4 binaries", str(cm.exception))

    def test_not_in_checksums(self) -> None:
        self.unlisted.add(f"codex-responses-api-proxy_{VERSION}_linux_amd64.sbom.json")
        self.assertFails("is not in checksums.txt")

    def test_linked_module_not_required_by_gomod(self) -> None:
        self.linked["example.com/other"] = "v1.0.0"
        self.assertFails("links example.com/other@v1.0.0, go.mod requires None")

    def test_toolchain_older_than_gomod(self) -> None:
        with self.assertRaises(check_sbom.SBOMError):
            check_sbom.check_dist(self.dist, self.gomod, "go1.25.9", lambda goos, goarch: dict(LINKED))


class ReadGomodTest(unittest.TestCase):
    def test_reads_blocks_single_lines_and_comments(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "go.mod"
            p.write_text(GOMOD, encoding="utf-8")
            go, requires = check_sbom.read_gomod(p)
        self.assertEqual(go, "1.26.0")
        self.assertEqual(requires, {**LINKED, "github.com/coder/websocket": "v1.8.15"})

    def test_repository_gomod_names_the_three(self) -> None:
        """The issue's three modules are in go/go.mod, so the snapshot check covers them."""
        _, requires = check_sbom.read_gomod(REPO / "go" / "go.mod")
        for mod in ("github.com/alecthomas/kong", "golang.org/x/sys", "golang.org/x/crypto/x509roots/fallback"):
            self.assertIn(mod, requires)


if __name__ == "__main__":
    unittest.main()
