"""`podtier serve --manage-certs`: the flags, and the manager they start.

`add_serve_args(serve_parser)` adds the flags the chart's self mode passes;
`manager_from_args(args, cert_dir)` returns None without `--manage-certs`, else a `CertManager`
that has already run its first reconcile (so `cert_dir` holds a pair before the TLS context is
built). Bad flags raise `ServeCertsError` (one line for the user); an API server that cannot be
reached within `--cert-start-timeout` does too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import time
from pathlib import Path

from kubernetes import client, config

from podtier.certs.manager import CertManager, utc_now

log = logging.getLogger("podtier.certs.serving")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class ServeCertsError(Exception):
    """A user error in the --manage-certs flags or environment; the message is one line."""


def add_serve_args(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("self-managed certificates (--manage-certs)")
    group.add_argument(
        "--manage-certs",
        action="store_true",
        help="make, store (Secret), inject (caBundle), renew and rotate the TLS certificates",
    )
    group.add_argument("--cert-secret", metavar="NAME", help="Secret holding the pair")
    group.add_argument("--namespace", metavar="NS", help="namespace of the Secret and Service")
    group.add_argument("--service", metavar="NAME", help="Service in front of podtier")
    group.add_argument("--mutating-webhook", metavar="NAME", help="MutatingWebhookConfiguration")
    group.add_argument(
        "--validating-webhook", metavar="NAME", help="ValidatingWebhookConfiguration"
    )
    group.add_argument(
        "--cert-check-seconds",
        type=float,
        default=30.0,
        metavar="S",
        help="how often to check the Secret and caBundles (default 30)",
    )
    group.add_argument(
        "--cert-start-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="how long to retry the first reconcile at start-up (default 60)",
    )


def manager_from_args(args: argparse.Namespace, cert_dir: Path) -> CertManager | None:
    if not getattr(args, "manage_certs", False):
        return None
    for flag in ("cert_secret", "namespace", "service"):
        value = getattr(args, flag)
        option = "--" + flag.replace("_", "-")
        if not value:
            raise ServeCertsError(f"--manage-certs needs {option} NAME")
        if not _NAME.match(value):
            raise ServeCertsError(f"{option} {value!r}: not a valid Kubernetes name")
    if not (args.mutating_webhook or args.validating_webhook):
        raise ServeCertsError(
            "--manage-certs needs --mutating-webhook and/or --validating-webhook NAME"
        )
    manager = CertManager(
        api_client(getattr(args, "kubeconfig", None)),
        namespace=args.namespace,
        secret_name=args.cert_secret,
        service=args.service,
        mutating_webhook=args.mutating_webhook,
        validating_webhook=args.validating_webhook,
        cert_dir=cert_dir,
        interval=dt.timedelta(seconds=args.cert_check_seconds),
    )
    first_reconcile(manager, args.cert_start_timeout)
    return manager


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """In-cluster service account credentials, else the kubeconfig (`--kubeconfig` or default)."""
    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as error:
        where = f"--kubeconfig {kubeconfig}" if kubeconfig else "in-cluster config or kubeconfig"
        raise ServeCertsError(f"{where}: cannot load Kubernetes credentials ({error})") from None
    return client.ApiClient(configuration)


def first_reconcile(manager: CertManager, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            manager.ensure(utc_now())
            return
        except Exception as error:
            text = str(error).strip().splitlines()
            message = f"{type(error).__name__}: {text[0] if text else ''}"
            if time.monotonic() + delay > deadline:
                raise ServeCertsError(
                    f"--manage-certs: Secret {manager.namespace}/{manager.secret_name} "
                    f"not reconciled within {timeout:g} s ({message})"
                ) from None
            log.warning("certificate set-up failed, retrying in %.1f s: %s", delay, message)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
