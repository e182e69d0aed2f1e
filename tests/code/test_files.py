"""The one atomic writer and the output-path rule (features/files.py)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from features.errors import OutputError, UserError
from features.files import AtomicOutput, atomic_output, check_outputs, output_format, write_text


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_commit_replaces_the_target_and_leaves_nothing_beside_it(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_output(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_text("new")
        assert target.read_text() == "old"  # not replaced before the block ends
    assert target.read_text() == "new"
    assert _siblings(target) == []  # no temporary file, no lock file


def test_an_error_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old" and _siblings(target) == []


def test_a_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "hub"
    target.mkdir()
    (target / "stale.parquet").write_text("x")
    with atomic_output(target, directory=True) as tmp:
        (tmp / "fresh.parquet").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["fresh.parquet"]
    assert _siblings(target) == []


def test_missing_parent_folders_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    write_text(target, "x")
    assert target.read_text() == "x"


def test_a_second_writer_of_the_same_target_is_refused(tmp_path):
    target = tmp_path / "scores.parquet"
    first = AtomicOutput(target)
    first.open()
    try:
        with pytest.raises(OutputError, match="another process is writing .*scores.parquet"):
            AtomicOutput(target).open()
    finally:
        first.abort()
    with atomic_output(target) as tmp:  # free again once the first writer is done
        tmp.write_text("ok")
    assert target.read_text() == "ok"


def test_a_writer_in_another_process_is_refused(tmp_path):
    target = tmp_path / "scores.parquet"
    code = textwrap.dedent(
        f"""
        import sys, time
        from features.files import AtomicOutput
        out = AtomicOutput({str(target)!r}); out.open()
        print("locked", flush=True); sys.stdin.readline(); out.abort()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match="another process"):
            AtomicOutput(target).open()
    finally:
        proc.communicate("\n", timeout=30)
    assert not target.exists()


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "f.txt", "x")
        with atomic_output(tmp_path / "d", directory=True) as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750


def test_a_full_disk_becomes_a_message(tmp_path):
    with pytest.raises(OutputError, match=r"cannot write .*out.parquet: no space left on the device"):
        with atomic_output(tmp_path / "out.parquet"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_a_read_error_inside_the_block_keeps_its_own_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="input.parquet"):
        with atomic_output(tmp_path / "out.parquet"):
            open(tmp_path / "input.parquet", "rb")


def test_an_output_that_is_an_input_is_refused(tmp_path):
    src = tmp_path / "features.parquet"
    src.write_text("x")
    with pytest.raises(OutputError, match=r"--out .*features.parquet is also an input of this run"):
        check_outputs({"--out": src}, [src])
    link = tmp_path / "link.parquet"
    link.symlink_to(src)
    with pytest.raises(OutputError, match="also an input"):
        check_outputs({"--out": link}, [src])
    hard = tmp_path / "hard.parquet"
    os.link(src, hard)
    with pytest.raises(OutputError, match="also an input"):
        check_outputs({"--out": hard}, [src])
    rel = os.path.relpath(src)
    with pytest.raises(OutputError, match="also an input"):
        check_outputs({"--out": rel}, [src])


def test_two_outputs_with_one_path_are_refused(tmp_path):
    p = tmp_path / "scores.parquet"
    with pytest.raises(OutputError, match="--out and --rejects both name"):
        check_outputs({"--out": p, "--rejects": tmp_path / "." / "scores.parquet"})


def test_the_suffix_decides_the_format(tmp_path):
    assert output_format("x.parquet") == "parquet" and output_format("X.CSV") == "csv"
    with pytest.raises(OutputError, match=r"--out scores.txt: suffix '.txt'; the suffix decides the format, use .csv or .parquet"):
        check_outputs({"--out": "scores.txt"}, suffixes={"--out": (".parquet", ".csv")})
    with pytest.raises(OutputError, match="no suffix"):
        output_format("scores", (".parquet",))
    assert check_outputs({"--out": tmp_path / "s.csv", "--rejects": None}, suffixes={"--out": (".parquet", ".csv")}) == {"--out": tmp_path / "s.csv"}


def test_folders_and_files_in_the_wrong_place_are_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a folder"):
        check_outputs({"--out": tmp_path / "d"})
    with pytest.raises(OutputError, match="is an existing file; give a folder"):
        check_outputs({"--out": tmp_path / "f"}, directories=("--out",))
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_outputs({"--out": tmp_path / "f" / "x.parquet"})


def test_an_unwritable_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
    with pytest.raises(OutputError, match="is not writable"):
        check_outputs({"--out": tmp_path / "x.parquet"})


def test_output_errors_are_user_errors():
    assert issubclass(OutputError, UserError) and OutputError.exit_code == 2
