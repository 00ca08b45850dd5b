"""`podtier certs generate` and `podtier certs show`, run as a user would."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from podtier.certs.cli import main
from podtier.certs.describe import colon_hex


def sans(cert_file: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + [
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    ]


def test_generate_writes_a_verifiable_pair_with_service_names(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "certs",
            "generate",
            "--out",
            str(out),
            "--service",
            "podtier",
            "--namespace",
            "airflow",
            "--dns",
            "extra.example",
            "--ip",
            "10.0.0.7",
        ]
    )
    assert code == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {"ca.crt": 0o644, "ca.key": 0o600, "tls.crt": 0o644, "tls.key": 0o600}
    assert sans(out / "tls.crt") == [
        "podtier",
        "podtier.airflow",
        "podtier.airflow.svc",
        "podtier.airflow.svc.cluster.local",
        "extra.example",
        "10.0.0.7",
    ]
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(out / "ca.crt"),
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "podtier.airflow.svc",
            str(out / "tls.crt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_generate_signs_with_an_existing_ca_and_does_not_copy_its_key(tmp_path: Path) -> None:
    assert main(["certs", "generate", "--out", str(tmp_path / "ca"), "--dns", "ca.local"]) == 0
    out = tmp_path / "out"
    code = main(
        [
            "certs",
            "generate",
            "--out",
            str(out),
            "--dns",
            "localhost",
            "--ca-cert",
            str(tmp_path / "ca" / "ca.crt"),
            "--ca-key",
            str(tmp_path / "ca" / "ca.key"),
            "--key-type",
            "rsa",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert (out / "ca.crt").read_bytes() == (tmp_path / "ca" / "ca.crt").read_bytes()
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "ca" / "ca.crt"), str(out / "tls.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "Public Key Algorithm: rsaEncryption"
        in subprocess.run(
            ["openssl", "x509", "-in", str(out / "tls.crt"), "-noout", "-text"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def test_days_options_set_lifetimes(tmp_path: Path) -> None:
    assert (
        main(
            [
                "certs",
                "generate",
                "--out",
                str(tmp_path),
                "--dns",
                "a",
                "--days",
                "7",
                "--ca-days",
                "30",
            ]
        )
        == 0
    )
    leaf = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 7
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days == 30


def test_show_prints_what_openssl_sees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["certs", "generate", "--out", str(tmp_path), "--service", "podtier", "--namespace", "ns"])
    capsys.readouterr()
    assert main(["certs", "show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("tls.crt", "ca.crt"):
        cert = x509.load_pem_x509_certificate((tmp_path / name).read_bytes())
        openssl_fp = (
            subprocess.run(
                [
                    "openssl",
                    "x509",
                    "-in",
                    str(tmp_path / name),
                    "-noout",
                    "-fingerprint",
                    "-sha256",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split("=", 1)[1]
        )
        assert colon_hex(cert.fingerprint(hashes.SHA256())) == openssl_fp
        assert openssl_fp in out
        assert f"{cert.serial_number:x}" in out
        assert cert.not_valid_after_utc.isoformat() in out
    assert "DNS:podtier.ns.svc.cluster.local" in out
    assert "subject:     CN=podtier" in out and "issuer:      CN=podtier-ca" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--dns", "a", "--ip", "1.2.3.x"], "--ip '1.2.3.x': not an IP address", id="bad-ip"
        ),
        pytest.param(
            ["--dns", "bad_name!"], "--dns 'bad_name!': not a valid DNS name", id="bad-dns"
        ),
        pytest.param(
            ["--service", "podtier"], "--service and --namespace go together", id="service-alone"
        ),
        pytest.param([], "no names for the certificate", id="no-names"),
        pytest.param(["--dns", "a", "--days", "0"], "--days 0: must be a positive", id="zero-days"),
        pytest.param(["--dns", "a", "--days", "x"], "--days 'x': not a whole", id="days-text"),
        pytest.param(
            ["--dns", "a", "--key-type", "dsa"], "--key-type 'dsa': expected ecdsa or rsa", id="dsa"
        ),
        pytest.param(
            ["--dns", "a", "--key-type", "rsa", "--rsa-bits", "1024"],
            "--rsa-bits 1024: RSA keys must be at least 2048 bits",
            id="weak-rsa",
        ),
        pytest.param(
            ["--dns", "a", "--ca-cert", "x.crt"],
            "--ca-cert and --ca-key go together",
            id="ca-cert-alone",
        ),
        pytest.param(
            ["--dns", "a", "--ca-cert", "missing.crt", "--ca-key", "missing.key"],
            "missing.crt: no such file",
            id="ca-missing",
        ),
    ],
)
def test_generate_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["certs", "generate", "--out", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_generate_refuses_a_key_that_is_not_the_cas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["certs", "generate", "--out", str(tmp_path / "a"), "--dns", "a"])
    capsys.readouterr()
    code = main(
        [
            "certs",
            "generate",
            "--out",
            str(tmp_path / "b"),
            "--dns",
            "b",
            "--ca-cert",
            str(tmp_path / "a" / "ca.crt"),
            "--ca-key",
            str(tmp_path / "a" / "tls.key"),
        ]
    )
    assert code == 2
    assert (
        f"{tmp_path / 'a' / 'tls.key'}: key does not match the CA certificate"
        in capsys.readouterr().err
    )


def test_generate_refuses_a_serving_cert_as_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["certs", "generate", "--out", str(tmp_path / "a"), "--dns", "a"])
    capsys.readouterr()
    code = main(
        [
            "certs",
            "generate",
            "--out",
            str(tmp_path / "b"),
            "--dns",
            "b",
            "--ca-cert",
            str(tmp_path / "a" / "tls.crt"),
            "--ca-key",
            str(tmp_path / "a" / "tls.key"),
        ]
    )
    assert code == 2
    assert "tls.crt: not a CA certificate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(lambda d: None, "not a directory", id="missing-dir"),
        pytest.param(lambda d: d.mkdir(), "tls.crt: no such file", id="empty-dir"),
        pytest.param(
            lambda d: (d.mkdir(), (d / "tls.crt").write_text("garbage")),
            "tls.crt: not a PEM certificate",
            id="garbage",
        ),
    ],
)
def test_show_errors_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup, message: str
) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "certs"
    setup(target)
    assert main(["certs", "show", str(target)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
