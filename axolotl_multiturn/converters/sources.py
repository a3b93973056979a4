"""Reading source records: JSON (a list, or an object holding a `data` list), JSON Lines, or Parquet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from axolotl_multiturn.converters.spec import ConversionError


def records(path: str | Path) -> Iterator[Any]:
    """The records of a local file, in order. A JSON Lines line that is not JSON is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConversionError(
                f"{path}: reading Parquet needs pyarrow (pip install pyarrow, or the [axolotl] extra)"
            ) from None

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    elif path.suffix == ".jsonl":
        with open(path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError as error:
                        raise ConversionError(f"{path}:{number}: not JSON ({error.msg})") from None
    else:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
        yield from (data["data"] if isinstance(data, dict) and "data" in data else data)
