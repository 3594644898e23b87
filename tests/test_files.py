"""Atomic writes: complete new content or the old file untouched, never a half-written file."""
import os
import stat

import pytest

from apr_lib.files import atomic_path, read_json, write_json, write_text


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new conte")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_written_files_get_the_usual_mode_and_round_trip(tmp_path):
    write_json(tmp_path / "m.json", {"error": 12.5})
    assert read_json(tmp_path / "m.json") == {"error": 12.5}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
