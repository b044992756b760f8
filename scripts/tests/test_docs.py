"""Tests for the user documentation: README.md, SECURITY.md and docs/*.md.

Run from the repository root:  python3 -m unittest discover -s scripts/tests -t .

- every relative link (and its #anchor) resolves to a file, or a heading in
  it, that exists in this checkout;
- the README stays short (issue 14: under 14 KiB), names the test command
  that .ci/run execs, and documents exactly the flags `--help` lists.
"""

from __future__ import annotations

import re
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
HELP_GOLDEN = REPO / "go" / "cmd" / "codex-responses-api-proxy" / "testdata" / "help.golden"
README_MAX_BYTES = 14 * 1024
TEST_COMMAND = "scripts/test.sh"

# [text](target) or [text](target "title"); images too. Code is removed first.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def documents() -> list[Path]:
    """The Markdown files whose links must resolve."""
    return [README, REPO / "SECURITY.md", *sorted((REPO / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The Markdown text without fenced code blocks, HTML comments and inline code."""
    text = FENCE.sub("", text)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return INLINE_CODE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor in a Markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        s = slug(heading)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken_links(path: Path, text: str | None = None) -> list[str]:
    """The relative links in path (whose content is text, if given) that do not resolve, as 'target: why'."""
    broken = []
    if text is None:
        text = path.read_text(encoding="utf-8")
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # https:, mailto: and the like: not ours to check offline
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(REPO)}")
    return broken


class LinkTest(unittest.TestCase):
    def test_relative_links_resolve(self) -> None:
        for doc in documents():
            with self.subTest(doc=str(doc.relative_to(REPO))):
                self.assertTrue(doc.exists(), f"{doc} is missing")
                self.assertEqual(broken_links(doc), [])

    def test_the_checker_sees_a_broken_link(self) -> None:
        """Guards the checker itself: a missing file and a missing anchor are both reported."""
        text = "# Probe\n[a](../NOPE.md) [b](../README.md#nope) [c](../SECURITY.md#security) `[d](x.md)`\n"
        found = broken_links(REPO / "docs" / "probe.md", text)
        self.assertEqual([b.split(":")[0] for b in found], ["../NOPE.md", "../README.md#nope"])


class ReadmeTest(unittest.TestCase):
    def test_short(self) -> None:
        size = README.stat().st_size
        self.assertLess(size, README_MAX_BYTES, f"README.md is {size} bytes; move history and reasoning to docs/")

    def test_names_the_ci_test_command(self) -> None:
        ci_run = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
        self.assertEqual(ci_run[-1], f"exec {TEST_COMMAND}")
        self.assertIn(f"\n{TEST_COMMAND}\n", README.read_text(encoding="utf-8"))

    def test_flags_table_matches_help(self) -> None:
        """Every flag --help lists has a row in the README's flags table, and no row names another."""
        helped = set(re.findall(r"--([a-z][a-z0-9-]*)", HELP_GOLDEN.read_text(encoding="utf-8")))
        text = README.read_text(encoding="utf-8")
        table = text.split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
        documented = set()
        for row in table.splitlines():
            if row.startswith("| `--"):
                documented |= set(re.findall(r"`--([a-z][a-z0-9-]*)", row.split("|")[1]))
        self.assertEqual(sorted(documented), sorted(helped))


if __name__ == "__main__":
    unittest.main()
