"""Writing files so that a crash never leaves a half-written file under the final name."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path: str, *, suffix: str = ""):
    """Yields a temporary path beside `path`; renames it into place if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and `path` keeps whatever it held before.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
