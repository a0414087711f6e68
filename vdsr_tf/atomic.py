"""Writing files so that a crash never leaves a half-written file under the final name."""

import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
import time

TEMPORARY_PREFIX = ".tmp-"
_WRITER = re.compile(re.escape(TEMPORARY_PREFIX) + r"(\d+)-")  # the writing process's id follows the prefix
_FOLDER_MARK = "folder-"  # after the id in `atomic_folder`'s names: only such folders are removed as leftovers
_FOLDER = re.compile(_WRITER.pattern + _FOLDER_MARK + r"[a-z0-9_]{8}")
_FILE = re.compile(_WRITER.pattern + r"[a-z0-9_]{8}(?:\.[A-Za-z0-9]+)?")  # mkstemp's 8 characters, the suffix
_IMPORTED = time.time()  # files of this process's id from before it are a killed predecessor's (a container's pid 1)


def _own_prefix() -> str:
    """The start of this process's temporary names, which `remove_leftovers` reads back with `_WRITER`."""
    return f"{TEMPORARY_PREFIX}{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path: str, *, suffix: str = ""):
    """Yields a temporary path beside `path`; renames it into place if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and `path` keeps whatever it held before.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=_own_prefix(), suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


@contextlib.contextmanager
def atomic_folder(path: str):
    """Yields a temporary folder beside `path`; puts it in place of `path` (replacing a folder there) if
    the block succeeds. On any exception the temporary folder is removed and `path` is as it was."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=_own_prefix() + _FOLDER_MARK, dir=parent)
    try:
        yield temporary
        os.chmod(temporary, 0o755)
        if not os.path.isdir(path):
            os.replace(temporary, path)
            return
        aside = tempfile.mkdtemp(prefix=_own_prefix() + _FOLDER_MARK, dir=parent)
        os.replace(path, aside)  # onto the empty folder
        try:
            os.replace(temporary, path)
        except BaseException:
            os.replace(aside, path)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def unused_path(path: str) -> str:
    """`path`, or `path-2`, `path-3`, ... where it is taken (two set-asides within one second of a stamp)."""
    candidate = path
    for number in itertools.count(2):
        if not os.path.exists(candidate):
            return candidate
        candidate = f"{path}-{number}"


def missing_folders(folder: str) -> list[str]:
    """The folders `os.makedirs(folder)` would create, deepest first (a dangling link is not one)."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def file_in_the_way(path: str) -> str | None:
    """The file standing where `path` or a folder above it would be made, or None (`os.makedirs` says
    only "File exists")."""
    folders = missing_folders(path)
    existing = os.path.dirname(folders[-1]) if folders else os.path.abspath(path)
    return None if os.path.isdir(existing) else existing


def remove_empty_folders(folders: list[str]) -> None:
    """Removes each of `folders` (deepest first) while it is empty, so a run that wrote nothing leaves nothing."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


def write_json(path: str, value) -> None:
    """Writes `value` as JSON, atomically."""
    with atomic_path(path, suffix=".json") as temporary:
        with open(temporary, "w") as file:
            json.dump(value, file, indent=1)


def _written_by_a_running_process(path: str, pid: int) -> bool:
    if pid == os.getpid():
        return os.path.getmtime(path) >= _IMPORTED
    if pid <= 0:
        return False
    if os.name == "nt":  # where os.kill would terminate it
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(directory: str, *, project_folder: bool = False) -> list[str]:
    """Removes the temporary files `atomic_path` leaves in `directory` when a process is killed.

    Only names of its exact form go: the folder may be the user's own (an --output of their home),
    whose .tmp-* files stay. In a `project_folder` (a checkpoint folder, which only this project
    writes) every .tmp-* file goes, earlier versions' names included. A file of a process that is
    still running (a second run writing into the same folder) stays; so does, until its id is free
    again, one of a killed process whose id a running one now has.
    """
    removed = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if not name.startswith(TEMPORARY_PREFIX) or not os.path.isfile(path):
                continue
            if not project_folder and not _FILE.fullmatch(name):
                continue
            writer = _WRITER.match(name)
            if not writer or not _written_by_a_running_process(path, int(writer.group(1))):
                os.remove(path)
                removed.append(path)
    return removed


def remove_leftover_folders(directory: str) -> list[str]:
    """Removes the temporary folders `atomic_folder` leaves in `directory` when a process is killed: only
    folders of its exact naming, of processes no longer running (the folder beside an export target
    may be a home folder, whose own .tmp-* folders stay)."""
    removed = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            path, writer = os.path.join(directory, name), _FOLDER.fullmatch(name)
            if writer and os.path.isdir(path) and not os.path.islink(path):
                if not _written_by_a_running_process(path, int(writer.group(1))):
                    shutil.rmtree(path)
                    removed.append(path)
    return removed
