"""bench.blocked_words: a full blocked-word list against a long prompt, as every quote checks it.

A server's list at its cap (``--phrases`` phrases of ``--length`` characters, mixed scripts) and
a prompt of ``--prompt`` characters that holds none of them (the worst case: nothing ends the
search early). Measured: building the server's matcher (``BlockedWords``, once per change of the
list), one check of a prompt (the event-loop time every quote spends on it), and the former way
side by side (every entry normalised and compared word by word at each quote). The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from bench.common import emit, percentile, progress, rounded
from bot.moderation import BlockedWords, normalise

ALPHABETS = (
    "abcdefghijklmnopqrstuvwxyz",
    "àéîõüçñßøå",
    "アイウエオカキクケコサシスセソタチツテトドラゴン",
    "赤青空海山川花火龍鳥",
    "กขคงจฉชซมังร",
)


def phrase(rng: random.Random, length: int) -> str:
    """Words of 3 to 9 letters, each from one alphabet, up to ``length`` characters."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        alphabet = rng.choice(ALPHABETS)
        words.append("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 9))))
    return " ".join(words)[:length].strip()


def prompt_text(rng: random.Random, length: int) -> str:
    """English-looking prose with some Japanese in it, none of the blocked phrases."""
    vocabulary = ("the", "cat", "walks", "slowly", "across", "a", "sunny", "garden", "while",
                  "camera", "pans", "left", "猫が歩く", "ゆっくり", "and", "birds", "sing")
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < length:
        out.append(rng.choice(vocabulary))
    return " ".join(out)[:length]


def timed(call: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def former(prompt: str, blocked: list[str]) -> bool:
    """The check before issue 18: every entry normalised again, compared word by word."""
    import re

    word = re.compile(r"\w+")
    tokens = tuple(word.findall(normalise(prompt)))
    for entry in blocked:
        needle = tuple(word.findall(normalise(entry)))
        size = len(needle)
        if needle and any(tokens[i:i + size] == needle for i in range(len(tokens) - size + 1)):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phrases", type=int, default=500)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--prompt", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    if args.quick:
        args.runs = 100
    rng = random.Random(18)
    blocked = [phrase(rng, args.length) for _ in range(args.phrases)]
    prompt = prompt_text(rng, args.prompt)
    progress(f"{len(blocked)} phrases of {args.length} characters, a prompt of {len(prompt)}")

    builds = timed(lambda: BlockedWords(blocked), 5)
    matcher = BlockedWords(blocked)
    assert not matcher.found_in(prompt)
    checks = timed(lambda: matcher.found_in(prompt), args.runs)
    formers = timed(lambda: former(prompt, blocked), max(3, args.runs // 50))
    check_p50 = statistics.median(checks)
    emit({
        "phrases": len(blocked),
        "phrase_chars": args.length,
        "prompt_chars": len(prompt),
        "build_ms_median": rounded(statistics.median(builds)),
        "check_ms_p50": rounded(check_p50, 3),
        "check_ms_p99": rounded(percentile(checks, 99), 3),
        "former_check_ms_p50": rounded(statistics.median(formers)),
        "speedup": rounded(statistics.median(formers) / check_p50, 1),
        "goal_check_ms": 1.0,
    })


if __name__ == "__main__":
    main()
