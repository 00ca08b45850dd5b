"""Publishing the pair into the cert dir in one atomic step, kubelet-style."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

from podtier.certs.files import read_serving_pair
from podtier.certs.generate import CertPair, write_pair
from podtier.certs.publish import publish
from tests.certs.conftest import serving_for

NOW = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)


def pair_files(serving: CertPair) -> dict[str, tuple[bytes, int]]:
    return {"tls.crt": (serving.cert_pem, 0o644), "tls.key": (serving.key_pem, 0o600)}


def hidden_dirs(directory: Path) -> list[str]:
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name.startswith("..") and p.is_dir() and not p.is_symlink()
    )


def test_publish_swaps_the_whole_set_and_cleans_up(tmp_path: Path, ca: CertPair) -> None:
    first, second = serving_for(ca), serving_for(ca)
    assert publish(tmp_path, pair_files(first), NOW) is True
    assert read_serving_pair(tmp_path).cert.serial_number == first.cert.serial_number
    assert publish(tmp_path, pair_files(first), NOW) is False  # unchanged: no churn
    assert publish(tmp_path, pair_files(second), NOW) is True
    assert read_serving_pair(tmp_path).cert.serial_number == second.cert.serial_number
    assert os.readlink(tmp_path / "tls.crt") == "..data/tls.crt"
    assert len(hidden_dirs(tmp_path)) == 1  # the old generation is gone
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600


def test_publish_replaces_plain_files_left_by_certs_generate(tmp_path: Path, ca: CertPair) -> None:
    write_pair(tmp_path, ca, serving_for(ca))
    new = serving_for(ca)
    publish(tmp_path, pair_files(new), NOW)
    assert (tmp_path / "tls.crt").is_symlink()
    assert read_serving_pair(tmp_path).cert.serial_number == new.cert.serial_number
