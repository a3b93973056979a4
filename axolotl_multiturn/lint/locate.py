"""The column where the value at a JSON pointer starts, in one line of valid JSON.

Used only on lines that have findings, so the fast path never pays for it; iterative, so any depth
that the JSON parser accepted is fine.
"""

from __future__ import annotations

import json
import re

from axolotl_multiturn.pointers import tokens

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:"]+')


def column(text: str, pointer: str) -> int | None:
    """1-based column of the value at `pointer` in `text`, or None if it is not there."""
    target = tokens(pointer)
    frames: list[list] = []  # [kind ('{' or '['), key or index, state]
    expect_value = True
    for match in _TOKEN.finditer(text):
        token, start = match.group(), match.start()
        if expect_value:
            if token == "]" and frames and frames[-1][0] == "[" and frames[-1][2] == "fresh":
                frames.pop()
                expect_value = False
                continue
            if [str(f[1]) for f in frames] == target:
                return start + 1
            expect_value = False
            if token == "{":
                frames.append(["{", None, "key"])
            elif token == "[":
                frames.append(["[", 0, "fresh"])
                expect_value = True
            continue
        kind, _, state = frames[-1] if frames else (None, None, None)
        if token in "}]":
            frames.pop()
        elif kind == "{" and state == "key":
            frames[-1][1], frames[-1][2] = json.loads(token), "colon"
        elif kind == "{" and token == ":":
            frames[-1][2] = "next"
            expect_value = True
        elif kind == "{" and token == ",":
            frames[-1][2] = "key"
        elif kind == "[" and token == ",":
            frames[-1][1] += 1
            frames[-1][2] = "next"
            expect_value = True
    return None
