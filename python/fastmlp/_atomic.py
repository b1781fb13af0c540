"""Writing a file so that a crash, a kill, Ctrl-C or a full disk never leaves it half written.

Every file fastmlp writes for a user (models, checkpoints, the CLI's --save) goes through
`atomic_write`: the bytes go to a temporary file in the target's own folder (so the final
rename never crosses a file system), are flushed and fsync'ed, and only then replace the target
with os.replace, which is atomic on POSIX and Windows. On any failure the temporary file is
removed and the previous file, if there was one, is left exactly as it was."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO


def _mode_for(path: str) -> int:
    """The permission bits the target should end with: the old file's, else what open() would give."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; some file systems (and Windows) cannot open a folder.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a binary stream whose contents replace `path` only when the block ends without error.

    The target is untouched until then: an exception (including KeyboardInterrupt and an OSError
    for a full disk) inside the block, or while flushing, removes the temporary file and re-raises.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
