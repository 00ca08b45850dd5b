from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from podtier.certs.generate import CertPair, make_ca, make_serving_cert, write_pair

NOW = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def ca() -> CertPair:
    return make_ca(dt.datetime.now(dt.UTC))


def serving_for(ca: CertPair, names: tuple[str, ...] = ("localhost",)) -> CertPair:
    return make_serving_cert(
        ca, dt.datetime.now(dt.UTC), dns_names=names, ip_addresses=["127.0.0.1"]
    )


@pytest.fixture
def cert_dir(tmp_path: Path, ca: CertPair) -> Path:
    directory = tmp_path / "tls"
    write_pair(directory, ca, serving_for(ca))
    return directory
