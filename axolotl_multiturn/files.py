"""Files written whole or not at all: into a temporary file beside the target, moved over it at the end
(a reader never sees half a file, and an error leaves the old one as it was)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def written_whole(target: Path) -> Iterator[BinaryIO]:
    """A binary stream whose bytes replace `target` when the block ends normally; on an error `target` is
    untouched and the temporary file removed."""
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            yield stream
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
