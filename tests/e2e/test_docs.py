"""The documentation stays navigable: every relative link in README.md and
docs/*.md reaches an existing file and heading, no page sends a reader to a
file they do not have (the SPEC's ../shared/, the old docs-sinks.md), every
configuration key the daemon knows is documented, and `make install` puts
the pages where the README's links still work.  No daemon is started."""
import glob
import os
import re
import subprocess
import unicodedata

import pytest

from conftest import BIN_DIR, ROOT

PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(path):
    """The lines of a page outside fenced code blocks, as (number, text)."""
    fenced = False
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if not fenced:
                yield n, line.rstrip("\n")


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation
    other than '-' and '_' removed, each space a '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.strip().lower()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_" or ch == " " or cat[0] in "LN":
            out.append("-" if ch == " " else ch)
    return "".join(out)


def anchors(path):
    seen, result = {}, set()
    for _, line in prose(path):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else "%s-%d" % (base, n))
    return result


def links(path):
    for n, line in prose(path):
        # Inline code is not a link: `[x](y)` in backticks is an example.
        for m in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            yield n, m.group(1)


def test_pages_exist():
    names = {os.path.relpath(p, ROOT) for p in PAGES}
    for page in ("configuration", "http", "control", "sinks", "operations", "design",
                 "performance", "packaging", "monitoring"):
        assert "docs/%s.md" % page in names, page


def test_slug_matches_github():
    assert slug("pay — take a payment through the daemon") == \
        "pay--take-a-payment-through-the-daemon"
    assert slug("Example: `config/examples/receipt-hook`") == \
        "example-configexamplesreceipt-hook"
    assert slug("vinr-sim: VINR's cloud on your laptop (development tool)") == \
        "vinr-sim-vinrs-cloud-on-your-laptop-development-tool"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_resolve(page):
    bad = []
    count = 0
    for n, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto:, man:
            continue
        count += 1
        path, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        where = "%s:%d: %s" % (os.path.relpath(page, ROOT), n, target)
        if not os.path.exists(dest):
            bad.append(where + " (no such file)")
        elif not dest.startswith(ROOT + os.sep):
            bad.append(where + " (outside the repository)")
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            bad.append(where + " (no such heading)")
    assert not bad, "\n".join(bad)
    if os.path.basename(page) == "README.md":
        assert count >= 10   # the README is mostly a map: its links must be checked


def test_no_references_a_reader_cannot_follow():
    """A user has the repository or the package, never ../shared/, and the
    reference pages are docs/*.md, not the old docs-*.md names."""
    files = PAGES + glob.glob(os.path.join(ROOT, "man", "*")) + \
        glob.glob(os.path.join(ROOT, "config", "**", "*"), recursive=True) + \
        glob.glob(os.path.join(ROOT, "scripts", "*")) + \
        glob.glob(os.path.join(ROOT, "systemd", "*"))
    bad = []
    for path in files:
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if re.search(r"\.\./shared|docs-(sinks|sim)\.md|\bDESIGN\.md\b", line):
                    bad.append("%s:%d: %s" % (os.path.relpath(path, ROOT), n, line.strip()))
    assert not bad, "\n".join(bad)


def config_keys():
    """(section, key) of every entry in src/config.c's key table."""
    with open(os.path.join(ROOT, "src", "config.c"), encoding="utf-8") as f:
        src = f.read()
    table = src[src.index("static const struct key keys[]"):]
    table = table[:table.index("};")]
    keys = re.findall(r'\{\s*"(\w+)",\s*"(\w+)",', table)
    assert len(keys) >= 25
    return keys


def test_every_config_key_documented():
    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as f:
        text = f.read()
    missing = [(s, k) for s, k in config_keys()
               if not re.search(r"^\| `?%s`? \| `%s` \|" % (s, k), text, re.M)]
    assert not missing, "not in docs/configuration.md's table: %s" % missing


def test_make_install_keeps_links_working(tmp_path):
    dest = tmp_path / "root"
    r = subprocess.run(["make", "-s", "-C", ROOT, "BUILD=" + BIN_DIR, "install",
                        "DESTDIR=" + str(dest), "PREFIX=/usr/local"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    docdir = dest / "usr/local/share/doc/vinr-webhookd"
    assert (docdir / "README.md").is_file()
    for page in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        # Same layout as the repository, so README's docs/… links resolve.
        assert (docdir / "docs" / os.path.basename(page)).is_file(), page
