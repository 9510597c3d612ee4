"""Transactions across brokers: markers to other leaders, verification by other coordinators.

A transaction coordinator writes each COMMIT/ABORT marker to the partition's leader. When that
is this broker the marker goes in-process; otherwise it is sent as WriteTxnMarkers v1 over
the Kafka protocol, as Kafka's ``TransactionMarkerChannelManager`` does (the coordinator retries
on failure). Likewise a partition leader whose producer's coordinator lives elsewhere asks it
with AddPartitionsToTxn v4 ``verify_only`` (KIP-890 part 1), or, for a transaction version 2
producer, has it add the partition with AddPartitionsToTxn v5 (KIP-890 part 2).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kio.schema.add_partitions_to_txn.v4 import request as add_v4
from kio.schema.add_partitions_to_txn.v5 import request as add_v5
from kio.schema.errors import ErrorCode
from kio.schema.types import ProducerId, TopicName, TransactionalId
from kio.schema.write_txn_markers.v1 import request as markers_v1
from kio.static.primitive import i16, i32

from headrace.cluster.wire import BrokerConnection
from headrace.transactions.markers import LocalMarkerWriter

if TYPE_CHECKING:
    from headrace.cluster.node import ClusterNode
    from headrace.transactions.coordinator import TransactionCoordinator

log = logging.getLogger(__name__)


class ClusterTransactionPeers:
    """The coordinator's :class:`MarkerWriter` and the broker's remote verifier."""

    def __init__(self, node: ClusterNode, local: LocalMarkerWriter) -> None:
        self._node = node
        self._local = local
        self.coordinator: TransactionCoordinator | None = None
        self._connections: dict[tuple[str, int], BrokerConnection] = {}

    def _connection(self, host: str, port: int) -> BrokerConnection:
        key = (host, port)
        connection = self._connections.get(key)
        if connection is None:
            connection = self._connections[key] = BrokerConnection(
                host, port, client_id=f"headrace-txn-{self._node.node_id}", timeout=15.0,
                tls=self._node.peer_tls(),
            )
        return connection

    async def write_marker(
        self, topic: str, partition: int, producer_id: int, producer_epoch: int,
        commit: bool, coordinator_epoch: int,
    ) -> ErrorCode:
        leader = self._node.partition_leader(topic, partition)
        if leader is None:
            if (topic, partition) not in self._node.store.cache.partitions:
                return ErrorCode.unknown_topic_or_partition  # deleted: the coordinator gives up
            return ErrorCode.leader_not_available
        if leader.node_id == self._node.node_id:
            return await self._local.write_marker(
                topic, partition, producer_id, producer_epoch, commit, coordinator_epoch
            )
        request = markers_v1.WriteTxnMarkersRequest(markers=(
            markers_v1.WritableTxnMarker(
                producer_id=ProducerId(producer_id), producer_epoch=i16(producer_epoch),
                transaction_result=commit,
                topics=(markers_v1.WritableTxnMarkerTopic(
                    name=TopicName(topic), partition_indexes=(i32(partition),)),),
                coordinator_epoch=i32(coordinator_epoch),
            ),
        ))
        try:
            response = await self._connection(leader.host, leader.port).request(request)
        except (OSError, TimeoutError, ValueError) as error:
            log.info("WriteTxnMarkers to broker %d failed: %s", leader.node_id, error)
            return ErrorCode.coordinator_not_available
        for result in response.markers:
            for topic_result in result.topics:
                for partition_result in topic_result.partitions:
                    return ErrorCode(int(partition_result.error_code))
        return ErrorCode.unknown_server_error

    async def verify(
        self, transactional_id: str, producer_id: int, producer_epoch: int, topic: str,
        partition: int, *, add: bool = False,
    ) -> ErrorCode:
        coordinator = self.coordinator
        if coordinator is None:
            return ErrorCode.coordinator_not_available
        node = coordinator.coordinator_for(transactional_id)
        if node is None:
            return ErrorCode.coordinator_not_available
        schema = add_v5 if add else add_v4
        request = schema.AddPartitionsToTxnRequest(transactions=(
            schema.AddPartitionsToTxnTransaction(
                transactional_id=TransactionalId(transactional_id),
                producer_id=ProducerId(producer_id),
                producer_epoch=i16(producer_epoch), verify_only=not add,
                topics=(schema.AddPartitionsToTxnTopic(
                    name=TopicName(topic), partitions=(i32(partition),)),),
            ),
        ))
        try:
            response = await self._connection(node.host, node.port).request(request)
        except (OSError, TimeoutError, ValueError) as error:
            log.info("transaction verification at broker %d failed: %s", node.node_id, error)
            return ErrorCode.coordinator_not_available
        if response.error_code != ErrorCode.none:
            return ErrorCode(int(response.error_code))
        for result in response.results_by_transaction:
            for topic_result in result.topic_results:
                for partition_result in topic_result.results_by_partition:
                    return ErrorCode(int(partition_result.partition_error_code))
        return ErrorCode.unknown_server_error

    async def close(self) -> None:
        for connection in self._connections.values():
            await connection.close()
        self._connections.clear()
