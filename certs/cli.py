"""`podtier certs generate` and `podtier certs show`.

`add_command(subparsers)` adds the `certs` group to podtier's top-level subparsers; each
command's handler is stored as `func` and returns an exit code. Bad input is one line on stderr
naming the flag or file and the value, exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from podtier.certs.describe import render, summarize
from podtier.certs.files import CA_CERT, TLS_CERT, CertFileError, parse_certs, read_bytes, read_ca
from podtier.certs.generate import (
    CA_LIFETIME,
    SERVING_LIFETIME,
    CertPair,
    make_ca,
    make_serving_cert,
    service_dns_names,
    write_pair,
)

Clock = Callable[[], dt.datetime]
USAGE_ERROR = 2
# RFC 1123 labels, optionally a leading wildcard label.
_DNS_NAME = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class UsageError(Exception):
    """Bad flags or files; the message is the one line the user sees."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def add_command(subparsers: Any, clock: Clock = utc_now) -> None:
    """Register `certs generate` and `certs show` under podtier's top-level subparsers."""
    certs = subparsers.add_parser("certs", help="make and inspect TLS certificates")
    group = certs.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")

    gen = group.add_parser(
        "generate",
        help="make a CA (or use yours) and a serving certificate signed by it",
        description="Write ca.crt, tls.crt and tls.key (and ca.key when a new CA is made) "
        "to --out. Keys are written with mode 0600.",
    )
    gen.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    gen.add_argument("--dns", action="append", default=[], metavar="NAME", help="DNS SAN")
    gen.add_argument("--ip", action="append", default=[], metavar="IP", help="IP SAN")
    gen.add_argument("--service", metavar="NAME", help="Service name (adds its in-cluster names)")
    gen.add_argument("--namespace", metavar="NS", help="namespace of --service")
    gen.add_argument("--key-type", default="ecdsa", metavar="ecdsa|rsa", help="default ecdsa")
    gen.add_argument("--rsa-bits", default="2048", metavar="N", help="default 2048")
    gen.add_argument("--ca-cert", type=Path, metavar="FILE", help="sign with this CA ...")
    gen.add_argument("--ca-key", type=Path, metavar="FILE", help="... and this CA key")
    gen.add_argument(
        "--ca-days", default=str(CA_LIFETIME.days), metavar="N", help="CA lifetime in days"
    )
    gen.add_argument(
        "--days", default=str(SERVING_LIFETIME.days), metavar="N", help="serving cert lifetime"
    )
    gen.set_defaults(func=lambda args: _run(generate, args, clock))

    show = group.add_parser("show", help="print the certificates in a directory")
    show.add_argument("dir", type=Path, metavar="DIR")
    show.set_defaults(func=lambda args: _run(show_dir, args, clock))


def main(argv: Sequence[str] | None = None, clock: Clock = utc_now) -> int:
    """Run `certs ...` on its own (used by tests; podtier's CLI calls `add_command`)."""
    parser = argparse.ArgumentParser(prog="podtier")
    add_command(parser.add_subparsers(dest="command", required=True), clock)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def _run(command: Callable[[argparse.Namespace, dt.datetime], int], args: Any, clock: Clock) -> int:
    prog = f"podtier certs {args.certs_command}"
    try:
        return command(args, clock())
    except (UsageError, CertFileError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as error:
        print(f"{prog}: error: {error.filename}: {error.strerror}", file=sys.stderr)
        return USAGE_ERROR


def generate(args: argparse.Namespace, now: dt.datetime) -> int:
    dns_names, ip_addresses = _subject_names(args)
    days = _positive_int("--days", args.days)
    ca_days = _positive_int("--ca-days", args.ca_days)
    rsa_bits = _positive_int("--rsa-bits", args.rsa_bits)
    if args.key_type not in ("ecdsa", "rsa"):
        raise UsageError(f"--key-type {args.key_type!r}: expected ecdsa or rsa")
    if args.key_type == "rsa" and rsa_bits < 2048:
        raise UsageError(f"--rsa-bits {rsa_bits}: RSA keys must be at least 2048 bits")
    if (args.ca_cert is None) != (args.ca_key is None):
        raise UsageError("--ca-cert and --ca-key go together: give both or neither")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")

    made_ca = args.ca_cert is None
    ca: CertPair
    if made_ca:
        ca = make_ca(
            now,
            lifetime=dt.timedelta(days=ca_days),
            key_kind=args.key_type,
            rsa_bits=rsa_bits,
        )
    else:
        ca = read_ca(args.ca_cert, args.ca_key)
        if ca.cert.not_valid_after_utc <= now:
            raise UsageError(
                f"--ca-cert {args.ca_cert}: the CA expired at {ca.cert.not_valid_after_utc}"
            )
    serving = make_serving_cert(
        ca,
        now,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        lifetime=dt.timedelta(days=days),
        key_kind=args.key_type,
        rsa_bits=rsa_bits,
    )
    write_pair(args.out, ca, serving, write_ca_key=made_ca)
    written = [CA_CERT, TLS_CERT, "tls.key"] + (["ca.key"] if made_ca else [])
    print(f"wrote {', '.join(str(args.out / name) for name in written)}")
    print(f"serving certificate valid until {serving.cert.not_valid_after_utc.isoformat()}")
    return 0


def show_dir(args: argparse.Namespace, now: dt.datetime) -> int:
    directory: Path = args.dir
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory")
    sections = []
    for name, label in ((TLS_CERT, "serving certificate"), (CA_CERT, "CA certificate")):
        path = directory / name
        certs = parse_certs(path, read_bytes(path))
        for index, cert in enumerate(certs):
            suffix = f" #{index + 1}" if len(certs) > 1 else ""
            sections.append(render(f"{label}{suffix} ({path})", summarize(cert), now))
    print("\n\n".join(sections))
    return 0


def _positive_int(flag: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: not a whole number") from None
    if value <= 0:
        raise UsageError(f"{flag} {value}: must be a positive number")
    return value


def _subject_names(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    if (args.service is None) != (args.namespace is None):
        raise UsageError("--service and --namespace go together: give both or neither")
    dns_names: list[str] = []
    if args.service is not None:
        for flag, value in (("--service", args.service), ("--namespace", args.namespace)):
            if not _DNS_NAME.match(value) or "." in value:
                raise UsageError(f"{flag} {value!r}: not a valid Kubernetes name")
        dns_names += service_dns_names(args.service, args.namespace)
    for name in args.dns:
        if not _DNS_NAME.match(name.lower()) or len(name) > 253:
            raise UsageError(f"--dns {name!r}: not a valid DNS name")
        dns_names.append(name.lower())
    ip_addresses = []
    for ip in args.ip:
        try:
            ip_addresses.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            raise UsageError(f"--ip {ip!r}: not an IP address") from None
    if not dns_names and not ip_addresses:
        raise UsageError("no names for the certificate: give --service/--namespace, --dns or --ip")
    return list(dict.fromkeys(dns_names)), list(dict.fromkeys(ip_addresses))
