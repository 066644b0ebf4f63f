"""Print the README's "Two commands" block: the lines a newcomer copies first.

Usage: python scripts/readme_commands.py [README.md]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_BLOCK = re.compile(r"## Two commands\n.*?```bash\n(.*?)```", re.DOTALL)


def two_commands(readme: str) -> list[str]:
    """The command lines of the first bash block under '## Two commands'."""
    match = _BLOCK.search(readme)
    if match is None:
        raise SystemExit("README.md has no bash block under '## Two commands'")
    lines = [line.split("   #")[0].rstrip() for line in match.group(1).splitlines()]
    return [line for line in lines if line.strip()]


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print("\n".join(two_commands(path.read_text(encoding="utf-8"))))
