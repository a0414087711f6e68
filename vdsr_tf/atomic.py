"""Writing files so that a crash never leaves a half-written file under the final name."""

import contextlib
import json
import os
import re
import tempfile

TEMPORARY_PREFIX = ".tmp-"
_WRITER = re.compile(re.escape(TEMPORARY_PREFIX) + r"(\d+)-")  # the writing process's id follows the prefix


@contextlib.contextmanager
def atomic_path(path: str, *, suffix: str = ""):
    """Yields a temporary path beside `path`; renames it into place if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and `path` keeps whatever it held before.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f"{TEMPORARY_PREFIX}{os.getpid()}-", suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_json(path: str, value) -> None:
    """Writes `value` as JSON, atomically."""
    with atomic_path(path, suffix=".json") as temporary:
        with open(temporary, "w") as file:
            json.dump(value, file, indent=1)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_leftovers(directory: str) -> list[str]:
    """Removes the temporary files `atomic_path` leaves in `directory` when a process is killed.

    A file of a process that is still running (a second run writing into the same folder) stays.
    """
    removed = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            writer = _WRITER.match(name)
            if writer and _running(int(writer.group(1))):
                continue
            if name.startswith(TEMPORARY_PREFIX) and os.path.isfile(path):
                os.remove(path)
                removed.append(path)
    return removed
