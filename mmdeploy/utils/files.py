"""Write files so that a failure never leaves a half-written one behind.

Every artefact is written to a temporary name in its final folder and renamed
into place when complete (a rename within one file system is atomic). A
:class:`StagingDir` groups several files: they move into ``work_dir`` only when
the whole job succeeded, and a failure (or Ctrl-C) while they move is rolled
back, so ``work_dir`` ends up either fully updated or exactly as it was.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading
from typing import Any, Iterator, List, Optional, Tuple

from mmdeploy.errors import InputFileError


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: files are created with mkstemp (mode 0600); give them the usual 0666 & ~umask
_FILE_MODE = 0o666 & ~_read_umask()


def check_readable_file(path: str, what: str) -> str:
    """Return ``path`` when it names a readable file; InputFileError naming the fix otherwise."""
    from mmdeploy.errors import InputFileError

    if not path:
        raise InputFileError(f'{what} path is empty; give a file path')
    if not os.path.exists(path):
        raise InputFileError(f'{what} not found: {path!r}; check the path')
    if not os.path.isfile(path):
        raise InputFileError(f'{what} is not a file: {path!r}; give a file, not a folder')
    try:
        with open(path, 'rb'):
            pass
    except OSError as exc:
        raise InputFileError(f'{what} {path!r} cannot be read ({exc.strerror or exc}); '
                             f'check its permissions') from exc
    return path


def _temp_path(path: str) -> str:
    directory, name = os.path.split(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix='.tmp', dir=directory)
    except OSError as exc:
        raise InputFileError(f'cannot write into {directory!r} ({exc.strerror or exc}); '
                             f'choose a writable folder') from exc
    os.close(fd)
    return tmp


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed when complete."""
    tmp = _temp_path(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=4) + '\n').encode())


def atomic_write_image(path: str, image: Any) -> None:
    """Encode ``image`` (BGR uint8) by the file's suffix and write it atomically."""
    import cv2

    suffix = os.path.splitext(path)[1] or '.png'
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise ValueError(f'cannot encode image as {suffix}')
    atomic_write_bytes(path, encoded.tobytes())


@contextlib.contextmanager
def defer_sigint() -> Iterator[List[bool]]:
    """Hold back Ctrl-C (SIGINT) for the block; yields a flag list set when one came.

    Only the main thread can install signal handlers; elsewhere (and when
    SIGINT is not Python's default handler) nothing is deferred.
    """
    received: List[bool] = []
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield received
        return

    def note(signum: int, frame: Any) -> None:
        received.append(True)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


class StagingDir:
    """A temporary folder inside ``work_dir`` whose files move in only on success.

    ``with StagingDir(work_dir) as stage:`` write into ``stage.path``; on normal
    exit every file is renamed into ``work_dir`` (same file system, so each
    rename is atomic); on an exception or KeyboardInterrupt the folder is
    removed and ``work_dir`` is left as it was (a ``work_dir`` created for
    this run is removed again).

    The move itself is all-or-nothing: a file it replaces is kept aside until
    every file is in place, and an error or Ctrl-C during the move puts the
    old files back (Ctrl-C then still raises KeyboardInterrupt).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = os.path.abspath(os.fspath(work_dir))
        self.path = ''
        self._created: List[str] = []
        self.committed: List[str] = []

    def __enter__(self) -> 'StagingDir':
        if os.path.exists(self.work_dir) and not os.path.isdir(self.work_dir):
            raise InputFileError(f'work dir {self.work_dir!r} exists and is not a folder; '
                                 f'give a folder path')
        try:
            missing = []
            parent = self.work_dir
            while not os.path.isdir(parent):
                missing.append(parent)
                parent = os.path.dirname(parent)
            os.makedirs(self.work_dir, exist_ok=True)
            self._created = missing  # deepest first: removed in this order on failure
            self.path = tempfile.mkdtemp(prefix='.mmdeploy-staging-', dir=self.work_dir)
        except OSError as exc:
            self._remove_created()
            raise InputFileError(f'cannot write into work dir {self.work_dir!r} '
                                 f'({exc.strerror or exc}); choose a writable folder') from exc
        return self

    def file(self, name: str) -> str:
        """Path of ``name`` inside the staging folder."""
        return os.path.join(self.path, name)

    def final(self, staged_path: str) -> str:
        """Where a staged file will live after commit."""
        return os.path.join(self.work_dir, os.path.relpath(staged_path, self.path))

    def _remove_created(self) -> None:
        for folder in self._created:
            shutil.rmtree(folder, ignore_errors=True)

    def _staged_files(self) -> List[str]:
        files = []
        for root, dirs, names in os.walk(self.path):
            dirs[:] = sorted(d for d in dirs if d != '.mmdeploy-backup')
            files.extend(os.path.join(root, name) for name in sorted(names))
        return files

    def _commit(self) -> None:
        backup_root = os.path.join(self.path, '.mmdeploy-backup')
        done: List[Tuple[str, Optional[str], List[str]]] = []  # (dst, backup or None, new dirs)
        with defer_sigint() as interrupted:
            try:
                for src in self._staged_files():
                    dst = self.final(src)
                    new_dirs = []
                    parent = os.path.dirname(dst)
                    while not os.path.isdir(parent):
                        new_dirs.append(parent)
                        parent = os.path.dirname(parent)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    backup = None
                    if os.path.lexists(dst):
                        if os.path.isdir(dst) and not os.path.islink(dst):
                            raise InputFileError(f'cannot write {dst!r}: a folder of that name exists; '
                                                 f'remove it or choose another work dir')
                        backup = os.path.join(backup_root, os.path.relpath(dst, self.work_dir))
                        os.makedirs(os.path.dirname(backup), exist_ok=True)
                        os.replace(dst, backup)
                    done.append((dst, backup, new_dirs))
                    os.replace(src, dst)
                if interrupted:
                    raise KeyboardInterrupt
            except BaseException:
                self._rollback(done)
                raise
        self.committed = [dst for dst, _, _ in done]

    @staticmethod
    def _rollback(done: List[Tuple[str, Optional[str], List[str]]]) -> None:
        for dst, backup, new_dirs in reversed(done):
            try:
                if backup is not None and os.path.lexists(backup):
                    os.replace(backup, dst)
                elif os.path.lexists(dst):
                    os.unlink(dst)
                for folder in new_dirs:
                    with contextlib.suppress(OSError):
                        os.rmdir(folder)
            except OSError:  # keep restoring the others
                pass

    def __exit__(self, exc_type: Optional[type], *rest: Any) -> None:
        failed = exc_type is not None
        try:
            if not failed:
                try:
                    self._commit()
                except BaseException:
                    failed = True
                    raise
        finally:
            # a second Ctrl-C must not leave the staging folder half-removed; after a
            # successful commit the work is complete, so a Ctrl-C this late is dropped
            with defer_sigint():
                shutil.rmtree(self.path, ignore_errors=True)
                if failed:
                    self._remove_created()
