"""Summarise py-spy raw (collapsed-stack) profiles: top self and inclusive functions.

    python -m bench.profile_summary PROFILE.txt [--top 25] [--match wallet_service]

Each input line is `frame;frame;...;frame COUNT`, frames like `func (path/file.py:12)`.
Self = samples where the function is the innermost frame; inclusive = samples where it
is anywhere on the stack (counted once per sample).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _function(frame: str) -> str:
    """`func (file)` without the line number, with site-packages paths shortened."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group('func')} ({path})"


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        count = int(match.group("count"))
        frames = [_function(f) for f in match.group("stack").split(";") if f]
        if not frames:
            continue
        # py-spy puts a "thread (0x...)" / "process" pseudo frame first; drop non-code ones.
        frames = [f for f in frames if "(" in f]
        total += count
        if frames:
            own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return total, own, inclusive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only functions whose text contains this")
    args = parser.parse_args(argv)
    total, own, inclusive = summarise(args.profile)
    print(f"{args.profile}: {total} samples")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\n-- top {title} --")
        shown = 0
        for name, count in counter.most_common():
            if args.match and args.match not in name:
                continue
            print(f"{100 * count / max(total, 1):6.1f}%  {count:7d}  {name}")
            shown += 1
            if shown >= args.top:
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
