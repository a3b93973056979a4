"""What any checker built like check-chat-jsonl costs, with no Python checks at all (`benchmarks/lint.py`
runs it as a whole process): the file split over every core at line ends, as check-chat-jsonl splits it;
each part parsed and validated by the compiled schema (`schema`), and with `bytes` also the byte work its
findings need: the object written back with sorted keys (duplicate keys, duplicate conversations), the two
colon counts, the digest, the escape and control-string scans.

    python benchmarks/lint_bound.py FILE SCHEMA schema|bytes
"""

import hashlib
import json
import os
import re
import sys

import jsonschema_rs
import orjson

path, schema, stage = sys.argv[1], sys.argv[2], sys.argv[3]
with open(schema, encoding="utf-8") as stream:
    valid = jsonschema_rs.validator_for(json.load(stream)).is_valid
escape, other = re.compile(rb"\\u"), re.compile(rb"\[(?:INST|/INST|SYSTEM_PROMPT|\|endofturn\|)\]")
size, cores = os.path.getsize(path), os.cpu_count() or 1
bounds = [0]
with open(path, "rb") as stream:
    for k in range(1, cores):
        stream.seek(max(size * k // cores, bounds[-1]))
        stream.readline()
        bounds.append(stream.tell())
bounds.append(size)
part = 0
for k in range(1, cores):
    if os.fork() == 0:
        part = k
        break
with open(path, "rb") as stream:
    stream.seek(bounds[part])
    data = stream.read(bounds[part + 1] - bounds[part])
for line in data.splitlines(keepends=True):
    obj = orjson.loads(line)
    valid(obj)
    if stage == "bytes":
        written = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        _ = line.count(b":") == written.count(b":")
        hashlib.sha1(written, usedforsecurity=False).digest()
        escape.search(line), b"<" in line, other.search(line)
if part:
    os._exit(0)
for _ in range(cores - 1):
    os.wait()
