import os
import subprocess

import pytest

from vdsr_tf.atomic import atomic_folder, atomic_path, remove_leftover_folders, remove_leftovers


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
    removed = remove_leftovers(str(tmp_path), project_folder=True)
    assert sorted(os.path.basename(path) for path in removed) == sorted(
        name for name, stays in names.items() if not stays
    )
    assert sorted(os.listdir(tmp_path)) == sorted(name for name, stays in names.items() if stays)


def test_in_a_users_folder_only_temporaries_of_the_exact_form_go(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    with atomic_path(str(tmp_path / "photo_x2.png"), suffix=".png") as temporary:
        form = os.path.basename(temporary).replace(str(os.getpid()), str(ended.pid))
    names = {form: False, ".tmp-session": True, f".tmp-{ended.pid}-notes.txt": True, ".tmp-k1ll3d.h5": True}
    names["photo_x2.png"] = True  # what the block wrote
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert [os.path.basename(path) for path in remove_leftovers(str(tmp_path))] == [form]
    assert sorted(os.listdir(tmp_path)) == sorted(name for name, stays in names.items() if stays)


def test_the_folder_of_a_killed_export_goes_others_stay(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    with pytest.raises(RuntimeError):
        with atomic_folder(str(tmp_path / "saved")) as temporary:
            raise RuntimeError
    own_name = os.path.basename(temporary).replace(f"-{os.getpid()}-", f"-{ended.pid}-")
    names = [own_name, f".tmp-{os.getpid()}-folder-abcdefgh", f".tmp-{ended.pid}-notes", ".tmp-build"]
    for name in names:
        (tmp_path / name / "variables").mkdir(parents=True)
    removed = remove_leftover_folders(str(tmp_path))
    assert removed == [str(tmp_path / own_name)]  # a running writer's and the user's own .tmp-* folders stay
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])


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


def test_a_dangling_link_is_named_as_what_is_in_the_way(tmp_path):
    from vdsr_tf.atomic import file_in_the_way

    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    assert file_in_the_way(str(tmp_path / "gone" / "run")) == str(tmp_path / "gone")
    assert file_in_the_way(str(tmp_path / "new" / "run")) is None
