"""A ConfigMap volume as kubelet lays it out, and its atomic update.

    DIR/..2026_11_26_06_00_00.123456789/default.yaml   (the data, in a timestamped directory)
    DIR/..data -> ..2026_11_26_06_00_00.123456789
    DIR/default.yaml -> ..data/default.yaml            (one visible symlink per key)

An update writes a new timestamped directory, points a `..data_tmp` symlink at it, renames
`..data_tmp` over `..data` (atomic), fixes the visible symlinks, and removes the old directory.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

_counter = itertools.count()


class ConfigMapVolume:
    def __init__(self, directory: Path, data: Mapping[str, str]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.update(data)

    def update(self, data: Mapping[str, str]) -> None:
        d = self.directory
        stamp = f"..2026_11_26_06_{next(_counter):02d}_00.{os.getpid()}"
        (d / stamp).mkdir()
        for key, text in data.items():
            (d / stamp / key).write_text(text)
        old = os.readlink(d / "..data") if (d / "..data").is_symlink() else None
        tmp = d / "..data_tmp"
        os.symlink(stamp, tmp)
        os.replace(tmp, d / "..data")
        for key in data:
            if not (d / key).is_symlink():
                os.symlink(f"..data/{key}", d / key)
        for entry in d.iterdir():
            if not entry.name.startswith(".") and entry.name not in data:
                entry.unlink()
        if old is not None:
            shutil.rmtree(d / old)
