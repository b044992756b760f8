"""Tests for scripts/stage_npm.py.

Run from the repository root:  python3 -m unittest discover -s scripts/tests -v

Each test builds a fake GoReleaser dist/ in a temp dir: small stand-in
binaries, and artifacts.json and metadata.json shaped like those a GoReleaser
v2.15.1 snapshot of this repository's .goreleaser.yaml writes.
The staged package is the repository's real npm/ directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import re
import tarfile
import tempfile
import unittest
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
NPM_DIR = REPO / "npm"
LAUNCHER = NPM_DIR / "bin" / "codex-responses-api-proxy.js"

_spec = importlib.util.spec_from_file_location("stage_npm", REPO / "scripts" / "stage_npm.py")
assert _spec is not None and _spec.loader is not None
stage_npm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stage_npm)

NAME = "codex-responses-api-proxy"
VERSION = "1.2.4-snapshot-0abc123"

# How GoReleaser names what Node calls process.platform and process.arch.
GOOS = {"linux": "linux", "android": "linux", "darwin": "darwin", "win32": "windows"}
GOARCH = {"x64": "amd64", "arm64": "arm64"}


def fake_binary(goos: str, goarch: str) -> bytes:
    """Return the stand-in content of the binary for goos/goarch."""
    return f"fake {NAME} for {goos}/{goarch}\n".encode()


def goreleaser_artifacts(root: Path) -> list[dict[str, Any]]:
    """Write fake binaries under root/dist and return artifacts.json entries for them.

    Per platform GoReleaser records the build output (type "Binary", no
    checksum), the raw binary from the `formats: [binary]` archive (also type
    "Binary", same path, extra.Format "binary" and extra.Checksum) and the
    tar.gz/zip archive; then checksums.txt and metadata.json.
    """
    artifacts: list[dict[str, Any]] = []
    for p in stage_npm.PLATFORMS:
        level = {"goamd64": "v1"} if p.goarch == "amd64" else {"goarm64": "v8.0"}
        target = f"{p.goos}_{p.goarch}_{next(iter(level.values()))}"
        path = f"dist/{NAME}_{target}/{NAME}{p.exe}"
        data = fake_binary(p.goos, p.goarch)
        (root / path).parent.mkdir(parents=True)
        (root / path).write_bytes(data)
        common = {"goos": p.goos, "goarch": p.goarch, **level, "target": target}
        name = f"{NAME}_{VERSION}_{p.goos}_{p.goarch}"
        ext = ".zip" if p.goos == "windows" else ".tar.gz"
        artifacts += [
            {"name": NAME + p.exe, "path": path, **common, "internal_type": 4, "type": "Binary",
             "extra": {"Binary": NAME, "Builder": "go", "Ext": p.exe, "ID": NAME}},
            {"name": name + p.exe, "path": path, **common, "internal_type": 2, "type": "Binary",
             "extra": {"Binary": NAME + p.exe, "Checksum": "sha256:" + hashlib.sha256(data).hexdigest(),
                       "Format": "binary", "ID": "binary"}},
            {"name": name + ext, "path": f"dist/{name}{ext}", **common, "internal_type": 1, "type": "Archive",
             "extra": {"Binaries": [NAME + p.exe], "Checksum": "sha256:" + "0" * 64,
                       "Files": ["LICENSE", "README.md"], "Format": ext[1:], "ID": "archive", "WrappedIn": name}},
        ]
    artifacts += [
        {"name": "checksums.txt", "path": "dist/checksums.txt", "internal_type": 12, "type": "Checksum", "extra": {}},
        {"name": "metadata.json", "path": "dist/metadata.json", "internal_type": 35, "type": "Metadata"},
    ]
    return artifacts


def raw_entry(artifacts: list[dict[str, Any]], goos: str, goarch: str) -> dict[str, Any]:
    """Return the raw-binary entry for goos/goarch from a fixture list."""
    (entry,) = [
        a for a in artifacts
        if a.get("goos") == goos and a.get("goarch") == goarch and a.get("extra", {}).get("Format") == "binary"
    ]
    return entry


class StageNpmTest(unittest.TestCase):
    """End to end through main(), with a fixture dist/ and the real npm/."""

    def setUp(self) -> None:
        self.make_fixture()

    def make_fixture(self) -> None:
        """Create a fresh temp root with dist/ holding binaries and metadata.json."""
        tmp = tempfile.TemporaryDirectory(prefix="test_stage_npm.")
        self.addCleanup(tmp.cleanup)
        self.root = Path(tmp.name)
        self.dist = self.root / "dist"
        self.out = self.root / "out"
        self.artifacts = goreleaser_artifacts(self.root)
        (self.dist / "metadata.json").write_text(json.dumps({
            "project_name": NAME, "tag": "v1.2.3", "previous_tag": "", "version": VERSION,
            "commit": "0abc123", "date": "2026-11-28T22:00:00Z", "runtime": {"goos": "linux", "goarch": "amd64"},
        }))

    def run_main(self, *extra: str) -> tuple[int, str, str]:
        """Write artifacts.json, run main() on the fixture; return (status, stdout, stderr)."""
        if self.artifacts is not None:
            (self.dist / "artifacts.json").write_text(json.dumps(self.artifacts))
        stdout, stderr = io.StringIO(), io.StringIO()
        argv = ["--dist", str(self.dist), "--npm-dir", str(NPM_DIR), "--out", str(self.out), *extra]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = stage_npm.main(argv)
        return status, stdout.getvalue(), stderr.getvalue()

    def test_stages_all_six_binaries(self) -> None:
        status, stdout, stderr = self.run_main()
        self.assertEqual((status, stderr), (0, ""))
        tarball = Path(stdout.strip())
        self.assertEqual(tarball.parent, self.out)
        with tarfile.open(tarball) as tar:
            members = {m.name: m for m in tar.getmembers()}
            for p in stage_npm.PLATFORMS:
                with self.subTest(platform=p.triple):
                    member = members[f"package/vendor/{p.triple}/{NAME}/{NAME}{p.exe}"]
                    self.assertEqual(oct(member.mode & 0o7777), oct(0o755))
                    content = tar.extractfile(member)
                    assert content is not None
                    self.assertEqual(content.read(), fake_binary(p.goos, p.goarch))
            vendored = [n for n in members if n.startswith("package/vendor/") and members[n].isfile()]
            self.assertEqual(len(vendored), len(stage_npm.PLATFORMS))
            manifest = tar.extractfile("package/package.json")
            assert manifest is not None
            package = json.loads(manifest.read())
            self.assertIn("package/LICENSE", members)
            self.assertIn(f"package/bin/{NAME}.js", members)
            self.assertFalse([n for n in members if n.startswith("package/test/")])
        self.assertEqual(package["version"], VERSION)
        self.assertEqual(package["name"], "@openai/codex-responses-api-proxy")

    def test_version_flag_overrides_metadata(self) -> None:
        status, stdout, stderr = self.run_main("--version", "2.0.0-rc.1")
        self.assertEqual((status, stderr), (0, ""))
        self.assertTrue(stdout.strip().endswith("-2.0.0-rc.1.tgz"), stdout)

    def test_errors(self) -> None:
        def tamper(a: list[dict[str, Any]]) -> None:
            path = self.root / raw_entry(a, "darwin", "arm64")["path"]
            path.write_bytes(path.read_bytes() + b"!")

        def drop_platform(a: list[dict[str, Any]]) -> None:
            a.remove(raw_entry(a, "windows", "arm64"))

        def drop_checksum(a: list[dict[str, Any]]) -> None:
            del raw_entry(a, "linux", "arm64")["extra"]["Checksum"]

        def duplicate(a: list[dict[str, Any]]) -> None:
            a.append(dict(raw_entry(a, "linux", "amd64"), goamd64="v3"))

        def rename(a: list[dict[str, Any]]) -> None:
            raw_entry(a, "windows", "amd64")["path"] = f"dist/{NAME}_windows_amd64_v1/{NAME}"

        cases: list[tuple[str, Callable[[list[dict[str, Any]]], None] | None, tuple[str, ...], str]] = [
            ("checksum mismatch", tamper, (), "sha256 is "),
            ("missing platform", drop_platform, (), "no raw binary for windows/arm64 (aarch64-pc-windows-msvc)"),
            ("missing checksum", drop_checksum, (), "records no sha256 checksum"),
            ("two binaries for one platform", duplicate, (), "2 raw binaries for linux/amd64"),
            ("binary without .exe", rename, (), "want a file named 'codex-responses-api-proxy.exe'"),
            ("missing artifacts.json", None, (), "artifacts.json not found"),
            ("invalid version", lambda a: None, ("--version", "v1.2"), "'v1.2' is not a semantic version"),
        ]
        for name, change, extra, want in cases:
            with self.subTest(name):
                self.make_fixture()
                if change is None:
                    self.artifacts = None
                else:
                    change(self.artifacts)
                status, stdout, stderr = self.run_main(*extra)
                self.assertEqual(status, 1)
                self.assertEqual(stdout, "")
                self.assertTrue(stderr.startswith("stage_npm: error: "), stderr)
                self.assertIn(want, stderr)
                self.assertFalse(self.out.exists() and list(self.out.iterdir()))


class PlatformTableTest(unittest.TestCase):
    """PLATFORMS and the launcher's TARGETS table describe the same binaries."""

    def test_platforms_match_launcher(self) -> None:
        source = LAUNCHER.read_text(encoding="utf-8")
        table = re.search(r"^const TARGETS = \{\n(.*?)^\};", source, re.M | re.S)
        assert table is not None, "no TARGETS table in the launcher"
        rows = re.findall(r'^  "([a-z0-9]+) ([a-z0-9]+)": "([a-z0-9_-]+)",$', table.group(1), re.M)
        self.assertEqual(len(rows), len(table.group(1).splitlines()), "a TARGETS row the regex cannot read")
        by_triple = {p.triple: p for p in stage_npm.PLATFORMS}
        self.assertEqual({triple for _, _, triple in rows}, set(by_triple))
        for os_, arch, triple in rows:
            with self.subTest(platform=f"{os_} {arch}"):
                p = by_triple[triple]
                self.assertEqual((GOOS[os_], GOARCH[arch]), (p.goos, p.goarch))
                # The launcher appends .exe on win32 only.
                self.assertEqual(p.exe, ".exe" if os_ == "win32" else "")


if __name__ == "__main__":
    unittest.main()
