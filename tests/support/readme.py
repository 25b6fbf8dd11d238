"""README.md's fenced blocks, each with the kind and options of its info string, for every test that reads the README.

One parser, so that the README example runner (tests/test_readme.py), the INI check and the install test read
the same blocks: ```` ```sh ````, ```` ```sh as-user ````, ```` ```sh no-run: REASON ````, ```` ```ini ````,
```` ```console ````, ```` ```yaml ````.
"""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(.*)$")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, for the failure message
    kind: str
    options: str
    text: str

    @property
    def where(self) -> str:
        return "README.md:%d (```%s %s)" % (self.line, self.kind, self.options)


def fenced_blocks(text: str) -> List[Block]:
    blocks: List[Block] = []
    opened = None
    body: List[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if opened is None and match:
            opened = (number, match.group(1).strip())
            body = []
        elif opened is not None and line.rstrip() == "```":
            kind, _, options = opened[1].partition(" ")
            blocks.append(Block(opened[0], kind, options.strip(), "\n".join(body) + "\n"))
            opened = None
        elif opened is not None:
            body.append(line)
    assert opened is None, "README.md:%d: a fence that is never closed" % opened[0]
    return blocks


def indented_code_lines(text: str) -> List[int]:
    """Lines opening an indented code block outside fences and list items (Markdown's rule, simplified)."""
    found = []
    inside_fence = in_list = False
    previous_blank = True
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside_fence = not inside_fence
        elif not inside_fence and line.strip():
            if re.match(r"^\s*([-*]|\d+[.)])\s", line):
                in_list = True
            elif not line.startswith(" "):
                in_list = False
            elif line.startswith("    ") and previous_blank and not in_list:
                found.append(number)
        previous_blank = not line.strip()
    return found


def readme_blocks() -> List[Block]:
    return fenced_blocks(README.read_text(encoding="utf-8"))


def blocks_of(kind: str) -> List[Block]:
    return [b for b in readme_blocks() if b.kind == kind]
