"""Command-line flags that make ``headrace broker`` a cluster member (``--metadata etcd://…``).

Kept apart from :mod:`headrace.cluster.node` so ``headrace --help`` does not import etcd or
gRPC; every flag has a ``HEADRACE_*`` environment mirror like the broker's own flags.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headrace.cluster.node import ClusterSettings


def _env(name: str) -> str | None:
    return os.environ.get(f"HEADRACE_{name}")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster (omit --metadata for a single embedded broker)")
    group.add_argument("--metadata", default=_env("METADATA"), metavar="etcd://HOST:PORT[,…]",
                       help="etcd endpoints holding the cluster metadata (HEADRACE_METADATA)")
    group.add_argument("--zone", default=_env("ZONE"),
                       help="failure zone of this broker (reported as its rack)")
    group.add_argument("--metadata-root", default=_env("METADATA_ROOT") or "/headrace",
                       help="etcd key prefix of this cluster")
    group.add_argument("--session-ttl", type=int, default=_env("SESSION_TTL") or "3",
                       help="seconds without etcd keep-alive before the broker counts as dead")
    group.add_argument("--replica-lag-time-max-ms", type=int,
                       default=_env("REPLICA_LAG_TIME_MAX_MS") or "10000",
                       help="a follower this far behind leaves the ISR")
    group.add_argument("--default-replication-factor", type=int,
                       default=_env("DEFAULT_REPLICATION_FACTOR") or "3",
                       help="replication factor of auto-created topics (capped at live brokers)")
    group.add_argument("--offsets-topic-replication-factor", type=int,
                       default=_env("OFFSETS_TOPIC_REPLICATION_FACTOR") or "3",
                       help="__consumer_offsets is created once this many brokers are up")
    group.add_argument("--controlled-shutdown-timeout", type=float,
                       default=_env("CONTROLLED_SHUTDOWN_TIMEOUT") or "15",
                       help="seconds to wait for leadership to move away on SIGTERM")
    group.add_argument("--reassignment-throttle-bytes-per-sec", type=int,
                       default=_env("REASSIGNMENT_THROTTLE_BYTES_PER_SEC") or "0",
                       help="rate at which replicas added by a reassignment copy data "
                            "(0: unlimited)")
    group.add_argument("--ready-requires-in-sync", action=argparse.BooleanOptionalAction,
                       default=(_env("READY_REQUIRES_IN_SYNC") or "true").lower() == "true",
                       help="/readyz fails while this broker's replicas are catching up")


def settings_from_args(args: argparse.Namespace) -> ClusterSettings | None:
    """The cluster membership ``--metadata`` and its companions ask for; None without it."""
    if not getattr(args, "metadata", None):
        return None
    from headrace.cluster.model import parse_metadata_url
    from headrace.cluster.node import ClusterSettings
    from headrace.core.errors import UserError

    try:
        parse_metadata_url(args.metadata)
    except ValueError as error:
        raise UserError(f"--metadata: {error}") from None

    return ClusterSettings(
        metadata_url=args.metadata,
        zone=args.zone,
        key_root=args.metadata_root,
        lease_ttl=args.session_ttl,
        replica_lag_time_max_ms=args.replica_lag_time_max_ms,
        default_replication_factor=args.default_replication_factor,
        offsets_topic_replication_factor=args.offsets_topic_replication_factor,
        controlled_shutdown_timeout=args.controlled_shutdown_timeout,
        ready_requires_in_sync=args.ready_requires_in_sync,
        reassignment_throttle_bytes_per_second=args.reassignment_throttle_bytes_per_sec,
    )
