#!/usr/bin/env python3
"""A picture of a plan's Markdown as GitHub shows it in a step summary: about 1,000 px wide.

    python scripts/plan-screenshot.py [--markdown FILE] [--out docs/demo-plan.png]

Without ``--markdown`` it runs ``examples/demo.py --registries`` and takes the plan its
reviewers see (a conflict with its fix, an error, a create, skips): the README's picture. The
Markdown is rendered by markdown-it-py (CommonMark with tables, as GitHub's renderer is) into
HTML with GitHub-like CSS, and headless Chromium (``apt-get install chromium``) takes the
screenshot at 1,012 px. It also says whether anything is wider than the page (a table that
would scroll sideways): that is what the picture is for. People run it; CI does not.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 1012
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")

# The rules of GitHub's Markdown CSS that shape a step summary, condensed.
CSS = """
body { margin: 0; background: #ffffff; }
.markdown-body {
  box-sizing: border-box; width: %(width)dpx; padding: 16px 24px 8px;
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial,
    "DejaVu Sans", sans-serif;
  font-size: 14px; line-height: 1.5; color: #1f2328; overflow-wrap: break-word;
}
.markdown-body h3 { font-size: 1.25em; font-weight: 600; margin: 8px 0 16px; }
.markdown-body h4 { font-size: 1em; font-weight: 600; margin: 24px 0 16px; }
.markdown-body p, .markdown-body table, .markdown-body pre, .markdown-body details,
.markdown-body blockquote, .markdown-body ul { margin: 0 0 16px; }
.markdown-body code {
  font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono",
    "DejaVu Sans Mono", monospace;
  font-size: 85%%; padding: .2em .4em; margin: 0; background: rgba(129, 139, 152, .12);
  border-radius: 6px; white-space: break-spaces;
}
.markdown-body pre {
  padding: 16px; overflow: auto; font-size: 85%%; line-height: 1.45; background: #f6f8fa;
  border-radius: 6px;
}
.markdown-body pre code { padding: 0; background: transparent; font-size: 100%%; white-space: pre; }
.markdown-body table {
  border-spacing: 0; border-collapse: collapse; display: block; width: max-content;
  max-width: 100%%; overflow: auto;
}
.markdown-body th, .markdown-body td { padding: 6px 13px; border: 1px solid #d1d9e0; }
.markdown-body th { font-weight: 600; }
.markdown-body tr:nth-child(2n) { background: #f6f8fa; }
.markdown-body blockquote { padding: 0 1em; color: #59636e; border-left: .25em solid #d1d9e0; }
.markdown-body hr { height: .25em; padding: 0; margin: 24px 0; background: #d1d9e0; border: 0; }
.markdown-body summary { cursor: pointer; }
"""

# Measures the page once it is laid out; the dump of the DOM carries the answer in the title.
MEASURE = """
<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const wide = [...document.querySelectorAll("table, pre")]
    .filter(e => e.scrollWidth > e.clientWidth + 1).length;
  document.title = `height=${root.scrollHeight} width=${root.scrollWidth} wide=${wide}`;
});
</script>
"""


def render_html(markdown: str, measure: bool = False) -> str:
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title></title>"
        f"<style>{CSS % {'width': WIDTH}}</style>{MEASURE if measure else ''}</head>"
        f"<body><article class='markdown-body'>{body}</article></body></html>"
    )


def chromium() -> str:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    sys.exit("headless Chromium is needed: sudo apt-get install -y chromium")


def browser(*args: str) -> str:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def demo_markdown(work: Path) -> str:
    target = work / "demo.md"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "demo.py"),
            "--registries",
            "--markdown",
            str(target),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return target.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", type=Path, help="the Markdown (default: the demo's plan)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo-plan.png")
    parser.add_argument(
        "--max-height", type=int, default=8000, help="pixels of the page's top to take (8000)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imagesync-screenshot-") as tmp:
        work = Path(tmp)
        markdown = (
            args.markdown.read_text(encoding="utf-8") if args.markdown else demo_markdown(work)
        )
        page = work / "page.html"
        page.write_text(render_html(markdown, measure=True), encoding="utf-8")
        dom = browser(f"--window-size={WIDTH},800", "--dump-dom", page.as_uri())
        found = re.search(r"<title>height=(\d+) width=(\d+) wide=(\d+)</title>", dom)
        if found is None:
            sys.exit(f"could not measure the page: {html.escape(dom[:200])}")
        height, width, wide = (int(n) for n in found.groups())
        taken = min(height, args.max_height)
        page.write_text(render_html(markdown), encoding="utf-8")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        browser(f"--window-size={WIDTH},{taken}", f"--screenshot={args.out}", page.as_uri())
    print(f"{args.out}: {WIDTH} x {taken} px (the page is {height} px tall)")
    if width > WIDTH or wide:
        print(
            f"wider than {WIDTH} px: the page is {width} px wide, {wide} table(s) or code "
            "block(s) scroll sideways"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
