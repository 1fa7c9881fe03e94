"""The defaults and choices ``--help`` shows, kept where the command line can read them cheaply.

The modules that act on them (the planner, the renderers) are loaded only when a command runs;
printing help loads click and this, nothing of the machinery.
"""

from __future__ import annotations

# Images planned and applied at once.
DEFAULT_PARALLELISM = 8
# What plans, apply reports and plan diffs can be printed as.
FORMATS = ("text", "json", "markdown")
# The Markdown of a plan, an apply report or a plan diff stays within this many bytes unless
# told otherwise (--max-bytes): GitHub refuses a step summary over 1 MiB.
MARKDOWN_MAX_BYTES = 1024 * 1024
