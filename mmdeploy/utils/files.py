"""Write files so that a failure never leaves a half-written one behind."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, List, Optional


def _temp_path(path: str) -> str:
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix='.tmp', dir=directory)
    os.close(fd)
    return tmp


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed when complete."""
    tmp = _temp_path(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
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


class StagingDir:
    """A temporary folder inside ``work_dir`` whose files move in only on success.

    ``with StagingDir(work_dir) as stage:`` write into ``stage.path``; on normal
    exit every file is renamed into ``work_dir`` (same file system, so each
    rename is atomic); on an exception or KeyboardInterrupt the folder is
    removed and ``work_dir`` is left as it was (a ``work_dir`` created for
    this run is removed again).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = os.path.abspath(work_dir)
        self.path = ''
        self._created_work_dir = False
        self.committed: List[str] = []

    def __enter__(self) -> 'StagingDir':
        if not os.path.isdir(self.work_dir):
            os.makedirs(self.work_dir)
            self._created_work_dir = True
        self.path = tempfile.mkdtemp(prefix='.mmdeploy-staging-', dir=self.work_dir)
        return self

    def file(self, name: str) -> str:
        """Path of ``name`` inside the staging folder."""
        return os.path.join(self.path, name)

    def final(self, staged_path: str) -> str:
        """Where a staged file will live after commit."""
        return os.path.join(self.work_dir, os.path.relpath(staged_path, self.path))

    def __exit__(self, exc_type: Optional[type], *rest: Any) -> None:
        try:
            if exc_type is None:
                for root, _, files in os.walk(self.path):
                    for name in sorted(files):
                        src = os.path.join(root, name)
                        dst = self.final(src)
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        os.replace(src, dst)
                        self.committed.append(dst)
        finally:
            shutil.rmtree(self.path, ignore_errors=True)
            if exc_type is not None and self._created_work_dir:
                shutil.rmtree(self.work_dir, ignore_errors=True)
