"""Publish files into a directory in one atomic step, the way the kubelet updates a Secret volume.

The files go into a fresh hidden `..<timestamp>` directory; a `..data_tmp` symlink to it is
renamed over `..data`; each visible name is a symlink `NAME -> ..data/NAME`. A reader (the cert
reloader) therefore sees either the whole old set or the whole new set, never a certificate
from one and a key from the other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

DATA = "..data"


def current_files(directory: Path, names: list[str]) -> dict[str, bytes]:
    found = {}
    for name in names:
        with contextlib.suppress(OSError):
            found[name] = (directory / name).read_bytes()
    return found


def publish(directory: Path, files: dict[str, tuple[bytes, int]], now: dt.datetime) -> bool:
    """Make `directory` show exactly `files` (name -> (content, mode)); False if it already did."""
    wanted = {name: content for name, (content, _mode) in files.items()}
    if current_files(directory, list(files)) == wanted:
        return False
    directory.mkdir(parents=True, exist_ok=True)
    data_link = directory / DATA
    old_target = os.readlink(data_link) if data_link.is_symlink() else None
    new_dir = Path(tempfile.mkdtemp(prefix=now.strftime("..%Y_%m_%d_%H_%M_%S."), dir=directory))
    os.chmod(new_dir, 0o755)
    for name, (content, mode) in files.items():
        fd = os.open(new_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    tmp_link = directory / f"{DATA}_tmp"
    tmp_link.unlink(missing_ok=True)
    os.symlink(new_dir.name, tmp_link)
    os.replace(tmp_link, data_link)
    for name in files:
        visible = directory / name
        target = f"{DATA}/{name}"
        if visible.is_symlink() and os.readlink(visible) == target:
            continue
        link_tmp = directory / f".{name}.link"
        link_tmp.unlink(missing_ok=True)
        os.symlink(target, link_tmp)
        os.replace(link_tmp, visible)  # replaces a plain file left by `certs generate`
    if old_target and old_target != new_dir.name:
        shutil.rmtree(directory / old_target, ignore_errors=True)
    return True
