"""`podtier serve`: the admission webhook over HTTPS, with the background jobs the flags ask for
(headroom watch, pod insight, finished-pod cleanup, learning, certificate management, policy
reload)."""

from __future__ import annotations

import argparse
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from podtier.certs import serving as certs_serving
from podtier.webhook.commands.args import (
    CliError,
    cluster_args,
    load_policy_paths,
    open_cluster,
    policy_arg,
)
from podtier.webhook.core.escalation_seal import EscalationSeal, SealKeyError
from podtier.webhook.policy import Policy

if TYPE_CHECKING:
    from podtier.webhook.http.serve import ServeSetup
    from podtier.webhook.insight.job import Insight


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the admission webhook over HTTPS")
    serve.add_argument("--dev", action="store_true", help="own throwaway certs, 127.0.0.1:8443")
    serve.add_argument("--cert-dir", type=Path, metavar="DIR", help="holds tls.crt and tls.key")
    serve.add_argument("--host", default=None, help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=8443, help="HTTPS port (default 8443)")
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="also serve /metrics, /healthz and /readyz over plain HTTP on PORT (0: off)",
    )
    policy_arg(serve)
    cluster_args(serve)
    certs_serving.add_serve_args(serve)
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="after SIGTERM, stay up not-ready this long before closing (default 0)",
    )
    serve.add_argument(
        "--escalation-key",
        type=Path,
        metavar="FILE",
        help="the key that seals OOM escalations (the chart's Secret; at least 32 bytes); every "
        "replica needs the same one. Without it a key of this process only is made",
    )
    serve.add_argument(
        "--admission-policy-params",
        metavar="NAME",
        help="keep the ConfigMap NAME (in the replica's namespace) holding the "
        "ValidatingAdmissionPolicy's parameters equal to the served policy (one replica writes, "
        "holding the Lease NAME); needs --cluster auto",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning"], default="info")
    cleanup_args(serve)
    learning_args(serve)

    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from podtier.webhook.http.serve import ServeSetup, make_dev_certs, print_dev_banner, run_server
    from podtier.webhook.http.server import Listen
    from podtier.webhook.observability import logs

    logs.configure(args.log_level)
    check_learning_args(args)
    policy = load_policy_paths(args.policy)
    if args.dev:
        cert_dir = args.cert_dir or make_dev_certs()
        host = args.host or "127.0.0.1"
    else:
        if args.cert_dir is None:
            raise CliError("serve: --cert-dir DIR is required (or --dev for throwaway certs)")
        cert_dir = args.cert_dir
        host = args.host or "0.0.0.0"
    try:  # --manage-certs: the Secret's pair is written to cert_dir before we go on
        cert_manager = certs_serving.manager_from_args(args, cert_dir)
    except certs_serving.ServeCertsError as error:
        raise CliError(str(error)) from None
    for name in ("tls.crt", "tls.key"):
        if not (cert_dir / name).is_file():
            raise CliError(f"--cert-dir {cert_dir}: {name} is missing")
    listen = Listen(host, args.port, args.metrics_port, args.drain_seconds)
    headroom = open_cluster(
        args.cluster, args.kubeconfig, args.stale_after, args.reservation_ttl, args.namespace_labels
    )
    setup = ServeSetup(policy, headroom, cert_dir, listen)
    setup.seal = escalation_seal(args.escalation_key, quiet=args.dev)
    warn_unseen_namespace_labels(policy, args.namespace_labels)
    _add_peers(args, setup)
    _add_admission_params(args, setup)
    _add_insight_cleanup_and_learning(args, setup)
    if cert_manager is not None:
        setup.background.append(lambda state: cert_manager.run)
    if args.policy:
        from podtier.webhook.policy.reload import policy_reload_job

        setup.background.append(policy_reload_job(args.policy))
    on_started = (lambda: print_dev_banner(cert_dir, listen)) if args.dev else None
    run_server(setup, on_started)
    return 0


def escalation_seal(path: Path | None, quiet: bool = False) -> EscalationSeal:
    """The seal from the key file, or with a random key of this process (one replica, --dev)."""
    if path is None:
        if quiet:
            return EscalationSeal(secrets.token_bytes(32))
        logging.getLogger("podtier.serve").warning(
            "no --escalation-key: OOM escalations are sealed with a key of this process only; "
            "give every replica the same key file"
        )
        return EscalationSeal(secrets.token_bytes(32))
    try:
        key = path.read_bytes().strip()
    except OSError as err:
        raise CliError(f"--escalation-key {path}: cannot read: {err.strerror}") from None
    try:
        return EscalationSeal(key)
    except SealKeyError as err:
        raise CliError(f"--escalation-key {path}: {err}") from None


def cleanup_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cleanup-after",
        metavar="DURATION",
        help="delete finished Airflow worker pods this long after they finished, e.g. 90m, "
        "1h, 2d (needs --cluster auto; default: off)",
    )
    parser.add_argument(
        "--cleanup-lease",
        default="podtier-cleanup",
        metavar="NAME",
        help="the Lease (in $POD_NAMESPACE) that elects the one replica that cleans up",
    )
    parser.add_argument(
        "--cleanup-rate",
        type=float,
        default=10.0,
        metavar="N",
        help="delete at most N pods per second on average (default 10)",
    )


def learning_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--learning",
        action="store_true",
        help="learn what each Airflow task uses from its finished pods (TaskProfile objects: "
        "more memory after an OOM kill, a recommended tier); needs --cluster auto and the "
        "TaskProfile CRD, or reads the profiles of a --cluster FILE",
    )
    parser.add_argument(
        "--learning-lease",
        default="podtier-learning",
        metavar="NAME",
        help="the Lease (in $POD_NAMESPACE) that elects the one replica writing TaskProfiles",
    )
    parser.add_argument(
        "--usage-prometheus",
        metavar="URL",
        help="also ask this Prometheus for each finished pod's memory peak and cpu p95 "
        "(cAdvisor's container_* metrics); needs --learning",
    )


def check_learning_args(args: argparse.Namespace) -> None:
    """The learning flags' mistakes, before anything is opened."""
    if args.usage_prometheus and not args.learning:
        raise CliError("--usage-prometheus needs --learning")
    if args.usage_prometheus and not args.usage_prometheus.startswith(("http://", "https://")):
        raise CliError(
            f'--usage-prometheus "{args.usage_prometheus}": expected an http:// or https:// URL'
        )
    if args.learning and args.cluster == "none":
        raise CliError(
            "--learning needs --cluster auto (or a --cluster FILE to read profiles from), "
            "not --cluster none"
        )


def _add_peers(args: argparse.Namespace, setup: ServeSetup) -> None:
    """`--peers GROUP`: share the nodes with the other replicas (`headroom.peers`)."""
    if not args.peers:
        return
    from podtier.webhook.headroom import LiveHeadroom
    from podtier.webhook.headroom.peers import peers_job
    from podtier.webhook.lease import replica_identity, replica_namespace

    if not isinstance(setup.headroom, LiveHeadroom):
        raise CliError(f"--peers needs --cluster auto (a live watch), not --cluster {args.cluster}")
    setup.headroom.use_peers()
    setup.background.append(
        peers_job(
            setup.headroom,
            setup.headroom.api_client.configuration,
            group=args.peers,
            namespace=replica_namespace(),
            identity=replica_identity(),
        )
    )


def _add_admission_params(args: argparse.Namespace, setup: ServeSetup) -> None:
    if not args.admission_policy_params:
        return
    from podtier.webhook.admission_params import admission_params_job
    from podtier.webhook.headroom import LiveHeadroom
    from podtier.webhook.lease import replica_identity, replica_namespace

    if not isinstance(setup.headroom, LiveHeadroom):
        raise CliError(
            f"--admission-policy-params needs --cluster auto (it writes a ConfigMap), not "
            f"--cluster {args.cluster}"
        )
    setup.background.append(
        admission_params_job(
            setup.headroom.api_client.configuration,
            name=args.admission_policy_params,
            namespace=replica_namespace(),
            identity=replica_identity(),
        )
    )


def _add_insight_cleanup_and_learning(args: argparse.Namespace, setup: ServeSetup) -> None:
    """Pod insight whenever there is a cluster picture; cleanup and learning when asked."""
    from podtier.webhook.cleanup.duration import DurationError, parse_duration
    from podtier.webhook.headroom import ClusterHeadroom, LiveHeadroom

    after = None
    if args.cleanup_after is not None:
        try:
            after = parse_duration(args.cleanup_after)
        except DurationError as err:
            raise CliError(f"--cleanup-after {err}") from None
        if args.cleanup_rate <= 0:
            raise CliError(f"--cleanup-rate {args.cleanup_rate:g}: expected more than 0 per second")
        if not isinstance(setup.headroom, LiveHeadroom):
            raise CliError(
                f"--cleanup-after needs --cluster auto (finished pods are found through the "
                f"live watch), not --cluster {args.cluster}"
            )
    if not isinstance(setup.headroom, ClusterHeadroom):
        return
    from podtier.webhook.insight.job import Insight
    from podtier.webhook.observability.metrics import AIRFLOW_PENDING_SECONDS

    insight = Insight(setup.headroom, setup.policy)
    for name, tier in setup.policy.tiers.items():  # the series from 0: a first wait counts
        for pool in tier.placement:
            AIRFLOW_PENDING_SECONDS.labels(name, pool)
    if isinstance(setup.headroom, LiveHeadroom):
        setup.headroom.track_running()  # for tiers that wait (`core.waiting`)
    if args.learning:
        _add_learning(args, setup, insight)
    if not isinstance(setup.headroom, LiveHeadroom):
        insight.load_file(args.cluster)
    setup.background.append(insight.job)
    if after is None or not isinstance(setup.headroom, LiveHeadroom):
        return
    from podtier.webhook.cleanup.cleaner import CleanupSettings
    from podtier.webhook.cleanup.job import cleanup_job
    from podtier.webhook.lease import replica_identity, replica_namespace

    rate = args.cleanup_rate
    settings = CleanupSettings(after=after, rate=rate, burst=max(1, int(rate)))
    setup.background.append(
        cleanup_job(
            insight.census,
            setup.headroom.api_client.configuration,
            settings,
            lease_name=args.cleanup_lease,
            namespace=replica_namespace(),
            identity=replica_identity(),
            synced=setup.headroom.ready,
        )
    )


def _add_learning(args: argparse.Namespace, setup: ServeSetup, insight: Insight) -> None:
    from podtier.webhook.headroom import LiveHeadroom
    from podtier.webhook.lease import replica_identity, replica_namespace
    from podtier.webhook.observability.metrics import OOM_ESCALATIONS

    for tier in setup.policy.tiers:  # each tier's series from 0: its first escalation counts
        OOM_ESCALATIONS.labels(tier)
    if not isinstance(setup.headroom, LiveHeadroom):
        from podtier.webhook.headroom import ClusterFileError
        from podtier.webhook.learning.snapshot import load_profiles_file

        try:
            setup.profiles = load_profiles_file(args.cluster)
        except ClusterFileError as err:
            raise CliError(str(err)) from None
        return
    from podtier.webhook.learning.job import LiveLearning

    # Faster than utilization needs: a pod's memory peak is only as good as its samples.
    insight.utilization_interval = min(insight.utilization_interval, 30.0)
    learning = LiveLearning(
        setup.headroom,
        insight,
        lease_name=args.learning_lease,
        namespace=replica_namespace(),
        identity=replica_identity(),
        prometheus_url=args.usage_prometheus,
        seal=setup.seal,
    )
    setup.profiles = learning.store
    setup.background.append(learning.job)


def warn_unseen_namespace_labels(policy: Policy, watched: bool) -> None:
    """A rule whose namespaceSelector reads labels this server never sees would silently never
    match: say so at start."""
    keys = policy.namespace_label_keys()
    if keys and not watched:
        logging.getLogger("podtier.serve").warning(
            "rules select namespaces by labels %s, but namespace labels are not watched: those "
            "rules cannot match; run with --cluster auto --namespace-labels",
            ", ".join(sorted(keys)),
            extra={"policy": policy.ident},
        )
