"""A file written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from axolotl_multiturn.files import written_whole


def test_replaces_the_target_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_bytes(b"old")
    with written_whole(target) as stream:
        stream.write(b"new")
        assert target.read_bytes() == b"old"  # nothing visible until the end
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_an_error_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="midway"), written_whole(target) as stream:
        stream.write(b"half")
        raise RuntimeError("midway")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
