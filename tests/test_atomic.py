import os
import subprocess

import pytest

from vdsr_tf.atomic import atomic_folder, atomic_path, remove_leftovers


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(path), suffix=".png") as temporary:
            assert os.path.basename(temporary).startswith(f".tmp-{os.getpid()}-")
            open(temporary, "wb").write(b"half")
            raise RuntimeError
    assert os.listdir(tmp_path) == ["out.png"] and path.read_bytes() == b"old"


def test_leftovers_of_ended_processes_go_those_of_running_ones_stay(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    names = {
        f".tmp-{os.getpid()}-abc.png": True,  # a run writing here now
        f".tmp-{ended.pid}-def.png": False,  # a killed run's
        f".tmp-{os.getpid()}-old.png": False,  # a killed run's whose id this process has now
        ".tmp-99999999999999999999-x.png": False,  # no process has such an id
        ".tmp-0-x.png": False,
        ".tmp-k1ll3d.h5": False,  # a name without a process id
        "photo_x2.png": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    os.utime(tmp_path / f".tmp-{os.getpid()}-old.png", (0, 0))
    removed = remove_leftovers(str(tmp_path))
    assert sorted(os.path.basename(path) for path in removed) == sorted(
        name for name, stays in names.items() if not stays
    )
    assert sorted(os.listdir(tmp_path)) == sorted(name for name, stays in names.items() if stays)


def test_the_folder_of_a_killed_export_goes_that_of_a_running_one_stays(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    for name in (f".tmp-{ended.pid}-killed", f".tmp-{os.getpid()}-writing"):
        (tmp_path / name / "variables").mkdir(parents=True)
        (tmp_path / name / "variables" / "variables.index").write_bytes(b"x")
    removed = remove_leftovers(str(tmp_path))
    assert removed == [str(tmp_path / f".tmp-{ended.pid}-killed")]
    assert os.listdir(tmp_path) == [f".tmp-{os.getpid()}-writing"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "saved"
    target.mkdir()
    (target / "old.pb").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(str(target)) as temporary:
            open(os.path.join(temporary, "variables"), "w").write("half")
            raise RuntimeError
    assert os.listdir(tmp_path) == ["saved"] and os.listdir(target) == ["old.pb"]
    with atomic_folder(str(target)) as temporary:
        open(os.path.join(temporary, "new.pb"), "w").write("new")
    assert os.listdir(tmp_path) == ["saved"] and os.listdir(target) == ["new.pb"]
    with atomic_folder(str(tmp_path / "fresh")) as temporary:
        open(os.path.join(temporary, "new.pb"), "w").write("new")
    assert sorted(os.listdir(tmp_path)) == ["fresh", "saved"] and oct(os.stat(tmp_path / "fresh").st_mode)[-3:] == "755"
