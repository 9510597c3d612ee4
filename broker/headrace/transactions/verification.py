"""KIP-890 part 1 for the partitions of this broker: may a transaction write here yet?

The produce path asks before a transaction's first batch to a partition. The transaction's
coordinator decides; when it runs on this broker the answer is an in-process call, otherwise
the cluster layer supplies ``remote`` (AddPartitionsToTxn v4 ``verify_only`` to the
coordinator over the Kafka protocol, as Kafka's ``AddPartitionsToTxnManager`` does). For a
transaction version 2 client (KIP-890 part 2) the same question, asked with ``add``, adds the
partition to the transaction (AddPartitionsToTxn v5 without ``verify_only`` when remote).
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

from headrace.core.broker import TransactionVerifier
from headrace.transactions.coordinator import TransactionCoordinator


class CoordinatorVerifier:
    """The broker's :class:`~headrace.core.broker.TransactionVerifier`."""

    def __init__(
        self, coordinator: TransactionCoordinator, remote: TransactionVerifier | None = None
    ) -> None:
        self._coordinator = coordinator
        self.remote = remote

    async def verify(
        self, transactional_id: str, producer_id: int, producer_epoch: int, topic: str,
        partition: int, *, add: bool = False,
    ) -> ErrorCode:
        coordinator = self._coordinator
        local = coordinator.log.ownership_error(transactional_id) is ErrorCode.none
        if local or self.remote is None:
            if add:
                return await coordinator.add_partitions(
                    transactional_id, producer_id, producer_epoch,
                    frozenset({(topic, partition)}),
                )
            return coordinator.verify(
                transactional_id, producer_id, producer_epoch, (topic, partition)
            )
        return await self.remote.verify(
            transactional_id, producer_id, producer_epoch, topic, partition, add=add
        )
