"""The kio request and response classes of every Kafka API version the broker serves.

One alias per API and direction names the union of the concrete kio classes of the versions
its handler is registered for (``ListOffsetsRequests`` is ``list_offsets.v1.ListOffsetsRequest |
… | list_offsets.v7.ListOffsetsRequest``), so mypy checks every field a handler reads against
every version. Produce (both ways) and Fetch responses are hand-framed in
:mod:`headrace.protocol` and have no alias here.

Only for type checking: importing this module loads ~140 kio modules, so handlers import it
under ``TYPE_CHECKING`` (``tests/server/test_api_types.py`` checks that each union covers
exactly the versions its handler is registered for).
"""

from __future__ import annotations

from typing import TypeAlias

from kio.schema.add_offsets_to_txn import v0 as add_offsets_to_txn_v0
from kio.schema.add_offsets_to_txn import v1 as add_offsets_to_txn_v1
from kio.schema.add_offsets_to_txn import v2 as add_offsets_to_txn_v2
from kio.schema.add_offsets_to_txn import v3 as add_offsets_to_txn_v3
from kio.schema.add_partitions_to_txn import v0 as add_partitions_to_txn_v0
from kio.schema.add_partitions_to_txn import v1 as add_partitions_to_txn_v1
from kio.schema.add_partitions_to_txn import v2 as add_partitions_to_txn_v2
from kio.schema.add_partitions_to_txn import v3 as add_partitions_to_txn_v3
from kio.schema.add_partitions_to_txn import v4 as add_partitions_to_txn_v4
from kio.schema.add_partitions_to_txn import v5 as add_partitions_to_txn_v5
from kio.schema.alter_client_quotas import v0 as alter_client_quotas_v0
from kio.schema.alter_client_quotas import v1 as alter_client_quotas_v1
from kio.schema.alter_configs import v0 as alter_configs_v0
from kio.schema.alter_configs import v1 as alter_configs_v1
from kio.schema.alter_configs import v2 as alter_configs_v2
from kio.schema.alter_partition_reassignments import v0 as alter_partition_reassignments_v0
from kio.schema.alter_user_scram_credentials import v0 as alter_user_scram_credentials_v0
from kio.schema.api_versions import v0 as api_versions_v0
from kio.schema.api_versions import v1 as api_versions_v1
from kio.schema.api_versions import v2 as api_versions_v2
from kio.schema.api_versions import v3 as api_versions_v3
from kio.schema.api_versions import v4 as api_versions_v4
from kio.schema.consumer_group_describe import v0 as consumer_group_describe_v0
from kio.schema.consumer_group_describe import v1 as consumer_group_describe_v1
from kio.schema.consumer_group_heartbeat import v0 as consumer_group_heartbeat_v0
from kio.schema.consumer_group_heartbeat import v1 as consumer_group_heartbeat_v1
from kio.schema.create_acls import v1 as create_acls_v1
from kio.schema.create_acls import v2 as create_acls_v2
from kio.schema.create_acls import v3 as create_acls_v3
from kio.schema.create_partitions import v0 as create_partitions_v0
from kio.schema.create_partitions import v1 as create_partitions_v1
from kio.schema.create_partitions import v2 as create_partitions_v2
from kio.schema.create_partitions import v3 as create_partitions_v3
from kio.schema.create_topics import v2 as create_topics_v2
from kio.schema.create_topics import v3 as create_topics_v3
from kio.schema.create_topics import v4 as create_topics_v4
from kio.schema.create_topics import v5 as create_topics_v5
from kio.schema.create_topics import v6 as create_topics_v6
from kio.schema.create_topics import v7 as create_topics_v7
from kio.schema.delete_acls import v1 as delete_acls_v1
from kio.schema.delete_acls import v2 as delete_acls_v2
from kio.schema.delete_acls import v3 as delete_acls_v3
from kio.schema.delete_groups import v0 as delete_groups_v0
from kio.schema.delete_groups import v1 as delete_groups_v1
from kio.schema.delete_groups import v2 as delete_groups_v2
from kio.schema.delete_records import v0 as delete_records_v0
from kio.schema.delete_records import v1 as delete_records_v1
from kio.schema.delete_records import v2 as delete_records_v2
from kio.schema.delete_topics import v1 as delete_topics_v1
from kio.schema.delete_topics import v2 as delete_topics_v2
from kio.schema.delete_topics import v3 as delete_topics_v3
from kio.schema.delete_topics import v4 as delete_topics_v4
from kio.schema.delete_topics import v5 as delete_topics_v5
from kio.schema.delete_topics import v6 as delete_topics_v6
from kio.schema.describe_acls import v1 as describe_acls_v1
from kio.schema.describe_acls import v2 as describe_acls_v2
from kio.schema.describe_acls import v3 as describe_acls_v3
from kio.schema.describe_client_quotas import v0 as describe_client_quotas_v0
from kio.schema.describe_client_quotas import v1 as describe_client_quotas_v1
from kio.schema.describe_cluster import v0 as describe_cluster_v0
from kio.schema.describe_cluster import v1 as describe_cluster_v1
from kio.schema.describe_configs import v1 as describe_configs_v1
from kio.schema.describe_configs import v2 as describe_configs_v2
from kio.schema.describe_configs import v3 as describe_configs_v3
from kio.schema.describe_configs import v4 as describe_configs_v4
from kio.schema.describe_groups import v0 as describe_groups_v0
from kio.schema.describe_groups import v1 as describe_groups_v1
from kio.schema.describe_groups import v2 as describe_groups_v2
from kio.schema.describe_groups import v3 as describe_groups_v3
from kio.schema.describe_groups import v4 as describe_groups_v4
from kio.schema.describe_groups import v5 as describe_groups_v5
from kio.schema.describe_producers import v0 as describe_producers_v0
from kio.schema.describe_transactions import v0 as describe_transactions_v0
from kio.schema.describe_user_scram_credentials import v0 as describe_user_scram_credentials_v0
from kio.schema.elect_leaders import v0 as elect_leaders_v0
from kio.schema.elect_leaders import v1 as elect_leaders_v1
from kio.schema.elect_leaders import v2 as elect_leaders_v2
from kio.schema.end_txn import v0 as end_txn_v0
from kio.schema.end_txn import v1 as end_txn_v1
from kio.schema.end_txn import v2 as end_txn_v2
from kio.schema.end_txn import v3 as end_txn_v3
from kio.schema.end_txn import v4 as end_txn_v4
from kio.schema.end_txn import v5 as end_txn_v5
from kio.schema.fetch import v4 as fetch_v4
from kio.schema.fetch import v5 as fetch_v5
from kio.schema.fetch import v6 as fetch_v6
from kio.schema.fetch import v7 as fetch_v7
from kio.schema.fetch import v8 as fetch_v8
from kio.schema.fetch import v9 as fetch_v9
from kio.schema.fetch import v10 as fetch_v10
from kio.schema.fetch import v11 as fetch_v11
from kio.schema.fetch import v12 as fetch_v12
from kio.schema.find_coordinator import v0 as find_coordinator_v0
from kio.schema.find_coordinator import v1 as find_coordinator_v1
from kio.schema.find_coordinator import v2 as find_coordinator_v2
from kio.schema.find_coordinator import v3 as find_coordinator_v3
from kio.schema.find_coordinator import v4 as find_coordinator_v4
from kio.schema.heartbeat import v0 as heartbeat_v0
from kio.schema.heartbeat import v1 as heartbeat_v1
from kio.schema.heartbeat import v2 as heartbeat_v2
from kio.schema.heartbeat import v3 as heartbeat_v3
from kio.schema.heartbeat import v4 as heartbeat_v4
from kio.schema.incremental_alter_configs import v0 as incremental_alter_configs_v0
from kio.schema.incremental_alter_configs import v1 as incremental_alter_configs_v1
from kio.schema.init_producer_id import v0 as init_producer_id_v0
from kio.schema.init_producer_id import v1 as init_producer_id_v1
from kio.schema.init_producer_id import v2 as init_producer_id_v2
from kio.schema.init_producer_id import v3 as init_producer_id_v3
from kio.schema.init_producer_id import v4 as init_producer_id_v4
from kio.schema.join_group import v0 as join_group_v0
from kio.schema.join_group import v1 as join_group_v1
from kio.schema.join_group import v2 as join_group_v2
from kio.schema.join_group import v3 as join_group_v3
from kio.schema.join_group import v4 as join_group_v4
from kio.schema.join_group import v5 as join_group_v5
from kio.schema.join_group import v6 as join_group_v6
from kio.schema.join_group import v7 as join_group_v7
from kio.schema.leave_group import v0 as leave_group_v0
from kio.schema.leave_group import v1 as leave_group_v1
from kio.schema.leave_group import v2 as leave_group_v2
from kio.schema.leave_group import v3 as leave_group_v3
from kio.schema.leave_group import v4 as leave_group_v4
from kio.schema.list_groups import v0 as list_groups_v0
from kio.schema.list_groups import v1 as list_groups_v1
from kio.schema.list_groups import v2 as list_groups_v2
from kio.schema.list_groups import v3 as list_groups_v3
from kio.schema.list_groups import v4 as list_groups_v4
from kio.schema.list_offsets import v1 as list_offsets_v1
from kio.schema.list_offsets import v2 as list_offsets_v2
from kio.schema.list_offsets import v3 as list_offsets_v3
from kio.schema.list_offsets import v4 as list_offsets_v4
from kio.schema.list_offsets import v5 as list_offsets_v5
from kio.schema.list_offsets import v6 as list_offsets_v6
from kio.schema.list_offsets import v7 as list_offsets_v7
from kio.schema.list_partition_reassignments import v0 as list_partition_reassignments_v0
from kio.schema.list_transactions import v0 as list_transactions_v0
from kio.schema.list_transactions import v1 as list_transactions_v1
from kio.schema.metadata import v0 as metadata_v0
from kio.schema.metadata import v1 as metadata_v1
from kio.schema.metadata import v2 as metadata_v2
from kio.schema.metadata import v3 as metadata_v3
from kio.schema.metadata import v4 as metadata_v4
from kio.schema.metadata import v5 as metadata_v5
from kio.schema.metadata import v6 as metadata_v6
from kio.schema.metadata import v7 as metadata_v7
from kio.schema.metadata import v8 as metadata_v8
from kio.schema.metadata import v9 as metadata_v9
from kio.schema.metadata import v10 as metadata_v10
from kio.schema.metadata import v11 as metadata_v11
from kio.schema.metadata import v12 as metadata_v12
from kio.schema.offset_commit import v2 as offset_commit_v2
from kio.schema.offset_commit import v3 as offset_commit_v3
from kio.schema.offset_commit import v4 as offset_commit_v4
from kio.schema.offset_commit import v5 as offset_commit_v5
from kio.schema.offset_commit import v6 as offset_commit_v6
from kio.schema.offset_commit import v7 as offset_commit_v7
from kio.schema.offset_commit import v8 as offset_commit_v8
from kio.schema.offset_commit import v9 as offset_commit_v9
from kio.schema.offset_delete import v0 as offset_delete_v0
from kio.schema.offset_fetch import v1 as offset_fetch_v1
from kio.schema.offset_fetch import v2 as offset_fetch_v2
from kio.schema.offset_fetch import v3 as offset_fetch_v3
from kio.schema.offset_fetch import v4 as offset_fetch_v4
from kio.schema.offset_fetch import v5 as offset_fetch_v5
from kio.schema.offset_fetch import v6 as offset_fetch_v6
from kio.schema.offset_fetch import v7 as offset_fetch_v7
from kio.schema.offset_fetch import v8 as offset_fetch_v8
from kio.schema.offset_fetch import v9 as offset_fetch_v9
from kio.schema.offset_for_leader_epoch import v2 as offset_for_leader_epoch_v2
from kio.schema.offset_for_leader_epoch import v3 as offset_for_leader_epoch_v3
from kio.schema.offset_for_leader_epoch import v4 as offset_for_leader_epoch_v4
from kio.schema.sasl_authenticate import v0 as sasl_authenticate_v0
from kio.schema.sasl_authenticate import v1 as sasl_authenticate_v1
from kio.schema.sasl_authenticate import v2 as sasl_authenticate_v2
from kio.schema.sasl_handshake import v0 as sasl_handshake_v0
from kio.schema.sasl_handshake import v1 as sasl_handshake_v1
from kio.schema.sync_group import v0 as sync_group_v0
from kio.schema.sync_group import v1 as sync_group_v1
from kio.schema.sync_group import v2 as sync_group_v2
from kio.schema.sync_group import v3 as sync_group_v3
from kio.schema.sync_group import v4 as sync_group_v4
from kio.schema.sync_group import v5 as sync_group_v5
from kio.schema.txn_offset_commit import v0 as txn_offset_commit_v0
from kio.schema.txn_offset_commit import v1 as txn_offset_commit_v1
from kio.schema.txn_offset_commit import v2 as txn_offset_commit_v2
from kio.schema.txn_offset_commit import v3 as txn_offset_commit_v3
from kio.schema.txn_offset_commit import v4 as txn_offset_commit_v4
from kio.schema.txn_offset_commit import v5 as txn_offset_commit_v5
from kio.schema.write_txn_markers import v1 as write_txn_markers_v1

FetchRequests: TypeAlias = (
    fetch_v4.FetchRequest | fetch_v5.FetchRequest | fetch_v6.FetchRequest | fetch_v7.FetchRequest
    | fetch_v8.FetchRequest | fetch_v9.FetchRequest | fetch_v10.FetchRequest
    | fetch_v11.FetchRequest | fetch_v12.FetchRequest
)
ListOffsetsRequests: TypeAlias = (
    list_offsets_v1.ListOffsetsRequest | list_offsets_v2.ListOffsetsRequest
    | list_offsets_v3.ListOffsetsRequest | list_offsets_v4.ListOffsetsRequest
    | list_offsets_v5.ListOffsetsRequest | list_offsets_v6.ListOffsetsRequest
    | list_offsets_v7.ListOffsetsRequest
)
ListOffsetsResponses: TypeAlias = (
    list_offsets_v1.ListOffsetsResponse | list_offsets_v2.ListOffsetsResponse
    | list_offsets_v3.ListOffsetsResponse | list_offsets_v4.ListOffsetsResponse
    | list_offsets_v5.ListOffsetsResponse | list_offsets_v6.ListOffsetsResponse
    | list_offsets_v7.ListOffsetsResponse
)
MetadataRequests: TypeAlias = (
    metadata_v0.MetadataRequest | metadata_v1.MetadataRequest | metadata_v2.MetadataRequest
    | metadata_v3.MetadataRequest | metadata_v4.MetadataRequest | metadata_v5.MetadataRequest
    | metadata_v6.MetadataRequest | metadata_v7.MetadataRequest | metadata_v8.MetadataRequest
    | metadata_v9.MetadataRequest | metadata_v10.MetadataRequest | metadata_v11.MetadataRequest
    | metadata_v12.MetadataRequest
)
MetadataResponses: TypeAlias = (
    metadata_v0.MetadataResponse | metadata_v1.MetadataResponse | metadata_v2.MetadataResponse
    | metadata_v3.MetadataResponse | metadata_v4.MetadataResponse | metadata_v5.MetadataResponse
    | metadata_v6.MetadataResponse | metadata_v7.MetadataResponse | metadata_v8.MetadataResponse
    | metadata_v9.MetadataResponse | metadata_v10.MetadataResponse | metadata_v11.MetadataResponse
    | metadata_v12.MetadataResponse
)
OffsetCommitRequests: TypeAlias = (
    offset_commit_v2.OffsetCommitRequest | offset_commit_v3.OffsetCommitRequest
    | offset_commit_v4.OffsetCommitRequest | offset_commit_v5.OffsetCommitRequest
    | offset_commit_v6.OffsetCommitRequest | offset_commit_v7.OffsetCommitRequest
    | offset_commit_v8.OffsetCommitRequest | offset_commit_v9.OffsetCommitRequest
)
OffsetCommitResponses: TypeAlias = (
    offset_commit_v2.OffsetCommitResponse | offset_commit_v3.OffsetCommitResponse
    | offset_commit_v4.OffsetCommitResponse | offset_commit_v5.OffsetCommitResponse
    | offset_commit_v6.OffsetCommitResponse | offset_commit_v7.OffsetCommitResponse
    | offset_commit_v8.OffsetCommitResponse | offset_commit_v9.OffsetCommitResponse
)
OffsetFetchRequests: TypeAlias = (
    offset_fetch_v1.OffsetFetchRequest | offset_fetch_v2.OffsetFetchRequest
    | offset_fetch_v3.OffsetFetchRequest | offset_fetch_v4.OffsetFetchRequest
    | offset_fetch_v5.OffsetFetchRequest | offset_fetch_v6.OffsetFetchRequest
    | offset_fetch_v7.OffsetFetchRequest | offset_fetch_v8.OffsetFetchRequest
    | offset_fetch_v9.OffsetFetchRequest
)
OffsetFetchResponses: TypeAlias = (
    offset_fetch_v1.OffsetFetchResponse | offset_fetch_v2.OffsetFetchResponse
    | offset_fetch_v3.OffsetFetchResponse | offset_fetch_v4.OffsetFetchResponse
    | offset_fetch_v5.OffsetFetchResponse | offset_fetch_v6.OffsetFetchResponse
    | offset_fetch_v7.OffsetFetchResponse | offset_fetch_v8.OffsetFetchResponse
    | offset_fetch_v9.OffsetFetchResponse
)
FindCoordinatorRequests: TypeAlias = (
    find_coordinator_v0.FindCoordinatorRequest | find_coordinator_v1.FindCoordinatorRequest
    | find_coordinator_v2.FindCoordinatorRequest | find_coordinator_v3.FindCoordinatorRequest
    | find_coordinator_v4.FindCoordinatorRequest
)
FindCoordinatorResponses: TypeAlias = (
    find_coordinator_v0.FindCoordinatorResponse | find_coordinator_v1.FindCoordinatorResponse
    | find_coordinator_v2.FindCoordinatorResponse | find_coordinator_v3.FindCoordinatorResponse
    | find_coordinator_v4.FindCoordinatorResponse
)
JoinGroupRequests: TypeAlias = (
    join_group_v0.JoinGroupRequest | join_group_v1.JoinGroupRequest | join_group_v2.JoinGroupRequest
    | join_group_v3.JoinGroupRequest | join_group_v4.JoinGroupRequest
    | join_group_v5.JoinGroupRequest | join_group_v6.JoinGroupRequest
    | join_group_v7.JoinGroupRequest
)
JoinGroupResponses: TypeAlias = (
    join_group_v0.JoinGroupResponse | join_group_v1.JoinGroupResponse
    | join_group_v2.JoinGroupResponse | join_group_v3.JoinGroupResponse
    | join_group_v4.JoinGroupResponse | join_group_v5.JoinGroupResponse
    | join_group_v6.JoinGroupResponse | join_group_v7.JoinGroupResponse
)
HeartbeatRequests: TypeAlias = (
    heartbeat_v0.HeartbeatRequest | heartbeat_v1.HeartbeatRequest | heartbeat_v2.HeartbeatRequest
    | heartbeat_v3.HeartbeatRequest | heartbeat_v4.HeartbeatRequest
)
HeartbeatResponses: TypeAlias = (
    heartbeat_v0.HeartbeatResponse | heartbeat_v1.HeartbeatResponse | heartbeat_v2.HeartbeatResponse
    | heartbeat_v3.HeartbeatResponse | heartbeat_v4.HeartbeatResponse
)
LeaveGroupRequests: TypeAlias = (
    leave_group_v0.LeaveGroupRequest | leave_group_v1.LeaveGroupRequest
    | leave_group_v2.LeaveGroupRequest | leave_group_v3.LeaveGroupRequest
    | leave_group_v4.LeaveGroupRequest
)
LeaveGroupResponses: TypeAlias = (
    leave_group_v0.LeaveGroupResponse | leave_group_v1.LeaveGroupResponse
    | leave_group_v2.LeaveGroupResponse | leave_group_v3.LeaveGroupResponse
    | leave_group_v4.LeaveGroupResponse
)
SyncGroupRequests: TypeAlias = (
    sync_group_v0.SyncGroupRequest | sync_group_v1.SyncGroupRequest | sync_group_v2.SyncGroupRequest
    | sync_group_v3.SyncGroupRequest | sync_group_v4.SyncGroupRequest
    | sync_group_v5.SyncGroupRequest
)
SyncGroupResponses: TypeAlias = (
    sync_group_v0.SyncGroupResponse | sync_group_v1.SyncGroupResponse
    | sync_group_v2.SyncGroupResponse | sync_group_v3.SyncGroupResponse
    | sync_group_v4.SyncGroupResponse | sync_group_v5.SyncGroupResponse
)
DescribeGroupsRequests: TypeAlias = (
    describe_groups_v0.DescribeGroupsRequest | describe_groups_v1.DescribeGroupsRequest
    | describe_groups_v2.DescribeGroupsRequest | describe_groups_v3.DescribeGroupsRequest
    | describe_groups_v4.DescribeGroupsRequest | describe_groups_v5.DescribeGroupsRequest
)
DescribeGroupsResponses: TypeAlias = (
    describe_groups_v0.DescribeGroupsResponse | describe_groups_v1.DescribeGroupsResponse
    | describe_groups_v2.DescribeGroupsResponse | describe_groups_v3.DescribeGroupsResponse
    | describe_groups_v4.DescribeGroupsResponse | describe_groups_v5.DescribeGroupsResponse
)
ListGroupsRequests: TypeAlias = (
    list_groups_v0.ListGroupsRequest | list_groups_v1.ListGroupsRequest
    | list_groups_v2.ListGroupsRequest | list_groups_v3.ListGroupsRequest
    | list_groups_v4.ListGroupsRequest
)
ListGroupsResponses: TypeAlias = (
    list_groups_v0.ListGroupsResponse | list_groups_v1.ListGroupsResponse
    | list_groups_v2.ListGroupsResponse | list_groups_v3.ListGroupsResponse
    | list_groups_v4.ListGroupsResponse
)
ApiVersionsRequests: TypeAlias = (
    api_versions_v0.ApiVersionsRequest | api_versions_v1.ApiVersionsRequest
    | api_versions_v2.ApiVersionsRequest | api_versions_v3.ApiVersionsRequest
    | api_versions_v4.ApiVersionsRequest
)
ApiVersionsResponses: TypeAlias = (
    api_versions_v0.ApiVersionsResponse | api_versions_v1.ApiVersionsResponse
    | api_versions_v2.ApiVersionsResponse | api_versions_v3.ApiVersionsResponse
    | api_versions_v4.ApiVersionsResponse
)
CreateTopicsRequests: TypeAlias = (
    create_topics_v2.CreateTopicsRequest | create_topics_v3.CreateTopicsRequest
    | create_topics_v4.CreateTopicsRequest | create_topics_v5.CreateTopicsRequest
    | create_topics_v6.CreateTopicsRequest | create_topics_v7.CreateTopicsRequest
)
CreateTopicsResponses: TypeAlias = (
    create_topics_v2.CreateTopicsResponse | create_topics_v3.CreateTopicsResponse
    | create_topics_v4.CreateTopicsResponse | create_topics_v5.CreateTopicsResponse
    | create_topics_v6.CreateTopicsResponse | create_topics_v7.CreateTopicsResponse
)
DeleteTopicsRequests: TypeAlias = (
    delete_topics_v1.DeleteTopicsRequest | delete_topics_v2.DeleteTopicsRequest
    | delete_topics_v3.DeleteTopicsRequest | delete_topics_v4.DeleteTopicsRequest
    | delete_topics_v5.DeleteTopicsRequest | delete_topics_v6.DeleteTopicsRequest
)
DeleteTopicsResponses: TypeAlias = (
    delete_topics_v1.DeleteTopicsResponse | delete_topics_v2.DeleteTopicsResponse
    | delete_topics_v3.DeleteTopicsResponse | delete_topics_v4.DeleteTopicsResponse
    | delete_topics_v5.DeleteTopicsResponse | delete_topics_v6.DeleteTopicsResponse
)
DeleteRecordsRequests: TypeAlias = (
    delete_records_v0.DeleteRecordsRequest | delete_records_v1.DeleteRecordsRequest
    | delete_records_v2.DeleteRecordsRequest
)
DeleteRecordsResponses: TypeAlias = (
    delete_records_v0.DeleteRecordsResponse | delete_records_v1.DeleteRecordsResponse
    | delete_records_v2.DeleteRecordsResponse
)
InitProducerIdRequests: TypeAlias = (
    init_producer_id_v0.InitProducerIdRequest | init_producer_id_v1.InitProducerIdRequest
    | init_producer_id_v2.InitProducerIdRequest | init_producer_id_v3.InitProducerIdRequest
    | init_producer_id_v4.InitProducerIdRequest
)
InitProducerIdResponses: TypeAlias = (
    init_producer_id_v0.InitProducerIdResponse | init_producer_id_v1.InitProducerIdResponse
    | init_producer_id_v2.InitProducerIdResponse | init_producer_id_v3.InitProducerIdResponse
    | init_producer_id_v4.InitProducerIdResponse
)
OffsetForLeaderEpochRequests: TypeAlias = (
    offset_for_leader_epoch_v2.OffsetForLeaderEpochRequest
    | offset_for_leader_epoch_v3.OffsetForLeaderEpochRequest
    | offset_for_leader_epoch_v4.OffsetForLeaderEpochRequest
)
OffsetForLeaderEpochResponses: TypeAlias = (
    offset_for_leader_epoch_v2.OffsetForLeaderEpochResponse
    | offset_for_leader_epoch_v3.OffsetForLeaderEpochResponse
    | offset_for_leader_epoch_v4.OffsetForLeaderEpochResponse
)
DescribeClientQuotasRequests: TypeAlias = (
    describe_client_quotas_v0.DescribeClientQuotasRequest
    | describe_client_quotas_v1.DescribeClientQuotasRequest
)
DescribeClientQuotasResponses: TypeAlias = (
    describe_client_quotas_v0.DescribeClientQuotasResponse
    | describe_client_quotas_v1.DescribeClientQuotasResponse
)
AlterClientQuotasRequests: TypeAlias = (
    alter_client_quotas_v0.AlterClientQuotasRequest
    | alter_client_quotas_v1.AlterClientQuotasRequest
)
AlterClientQuotasResponses: TypeAlias = (
    alter_client_quotas_v0.AlterClientQuotasResponse
    | alter_client_quotas_v1.AlterClientQuotasResponse
)
DescribeConfigsRequests: TypeAlias = (
    describe_configs_v1.DescribeConfigsRequest | describe_configs_v2.DescribeConfigsRequest
    | describe_configs_v3.DescribeConfigsRequest | describe_configs_v4.DescribeConfigsRequest
)
DescribeConfigsResponses: TypeAlias = (
    describe_configs_v1.DescribeConfigsResponse | describe_configs_v2.DescribeConfigsResponse
    | describe_configs_v3.DescribeConfigsResponse | describe_configs_v4.DescribeConfigsResponse
)
AlterConfigsRequests: TypeAlias = (
    alter_configs_v0.AlterConfigsRequest | alter_configs_v1.AlterConfigsRequest
    | alter_configs_v2.AlterConfigsRequest
)
AlterConfigsResponses: TypeAlias = (
    alter_configs_v0.AlterConfigsResponse | alter_configs_v1.AlterConfigsResponse
    | alter_configs_v2.AlterConfigsResponse
)
CreatePartitionsRequests: TypeAlias = (
    create_partitions_v0.CreatePartitionsRequest | create_partitions_v1.CreatePartitionsRequest
    | create_partitions_v2.CreatePartitionsRequest | create_partitions_v3.CreatePartitionsRequest
)
CreatePartitionsResponses: TypeAlias = (
    create_partitions_v0.CreatePartitionsResponse | create_partitions_v1.CreatePartitionsResponse
    | create_partitions_v2.CreatePartitionsResponse | create_partitions_v3.CreatePartitionsResponse
)
DeleteGroupsRequests: TypeAlias = (
    delete_groups_v0.DeleteGroupsRequest | delete_groups_v1.DeleteGroupsRequest
    | delete_groups_v2.DeleteGroupsRequest
)
DeleteGroupsResponses: TypeAlias = (
    delete_groups_v0.DeleteGroupsResponse | delete_groups_v1.DeleteGroupsResponse
    | delete_groups_v2.DeleteGroupsResponse
)
ElectLeadersRequests: TypeAlias = (
    elect_leaders_v0.ElectLeadersRequest | elect_leaders_v1.ElectLeadersRequest
    | elect_leaders_v2.ElectLeadersRequest
)
ElectLeadersResponses: TypeAlias = (
    elect_leaders_v0.ElectLeadersResponse | elect_leaders_v1.ElectLeadersResponse
    | elect_leaders_v2.ElectLeadersResponse
)
IncrementalAlterConfigsRequests: TypeAlias = (
    incremental_alter_configs_v0.IncrementalAlterConfigsRequest
    | incremental_alter_configs_v1.IncrementalAlterConfigsRequest
)
IncrementalAlterConfigsResponses: TypeAlias = (
    incremental_alter_configs_v0.IncrementalAlterConfigsResponse
    | incremental_alter_configs_v1.IncrementalAlterConfigsResponse
)
AlterPartitionReassignmentsRequests: TypeAlias = (
    alter_partition_reassignments_v0.AlterPartitionReassignmentsRequest
)
AlterPartitionReassignmentsResponses: TypeAlias = (
    alter_partition_reassignments_v0.AlterPartitionReassignmentsResponse
)
ListPartitionReassignmentsRequests: TypeAlias = (
    list_partition_reassignments_v0.ListPartitionReassignmentsRequest
)
ListPartitionReassignmentsResponses: TypeAlias = (
    list_partition_reassignments_v0.ListPartitionReassignmentsResponse
)
OffsetDeleteRequests: TypeAlias = offset_delete_v0.OffsetDeleteRequest
OffsetDeleteResponses: TypeAlias = offset_delete_v0.OffsetDeleteResponse
DescribeClusterRequests: TypeAlias = (
    describe_cluster_v0.DescribeClusterRequest | describe_cluster_v1.DescribeClusterRequest
)
DescribeClusterResponses: TypeAlias = (
    describe_cluster_v0.DescribeClusterResponse | describe_cluster_v1.DescribeClusterResponse
)
ConsumerGroupHeartbeatRequests: TypeAlias = (
    consumer_group_heartbeat_v0.ConsumerGroupHeartbeatRequest
    | consumer_group_heartbeat_v1.ConsumerGroupHeartbeatRequest
)
ConsumerGroupHeartbeatResponses: TypeAlias = (
    consumer_group_heartbeat_v0.ConsumerGroupHeartbeatResponse
    | consumer_group_heartbeat_v1.ConsumerGroupHeartbeatResponse
)
ConsumerGroupDescribeRequests: TypeAlias = (
    consumer_group_describe_v0.ConsumerGroupDescribeRequest
    | consumer_group_describe_v1.ConsumerGroupDescribeRequest
)
ConsumerGroupDescribeResponses: TypeAlias = (
    consumer_group_describe_v0.ConsumerGroupDescribeResponse
    | consumer_group_describe_v1.ConsumerGroupDescribeResponse
)
AddPartitionsToTxnRequests: TypeAlias = (
    add_partitions_to_txn_v0.AddPartitionsToTxnRequest
    | add_partitions_to_txn_v1.AddPartitionsToTxnRequest
    | add_partitions_to_txn_v2.AddPartitionsToTxnRequest
    | add_partitions_to_txn_v3.AddPartitionsToTxnRequest
    | add_partitions_to_txn_v4.AddPartitionsToTxnRequest
    | add_partitions_to_txn_v5.AddPartitionsToTxnRequest
)
AddPartitionsToTxnResponses: TypeAlias = (
    add_partitions_to_txn_v0.AddPartitionsToTxnResponse
    | add_partitions_to_txn_v1.AddPartitionsToTxnResponse
    | add_partitions_to_txn_v2.AddPartitionsToTxnResponse
    | add_partitions_to_txn_v3.AddPartitionsToTxnResponse
    | add_partitions_to_txn_v4.AddPartitionsToTxnResponse
    | add_partitions_to_txn_v5.AddPartitionsToTxnResponse
)
AddOffsetsToTxnRequests: TypeAlias = (
    add_offsets_to_txn_v0.AddOffsetsToTxnRequest | add_offsets_to_txn_v1.AddOffsetsToTxnRequest
    | add_offsets_to_txn_v2.AddOffsetsToTxnRequest | add_offsets_to_txn_v3.AddOffsetsToTxnRequest
)
AddOffsetsToTxnResponses: TypeAlias = (
    add_offsets_to_txn_v0.AddOffsetsToTxnResponse | add_offsets_to_txn_v1.AddOffsetsToTxnResponse
    | add_offsets_to_txn_v2.AddOffsetsToTxnResponse | add_offsets_to_txn_v3.AddOffsetsToTxnResponse
)
EndTxnRequests: TypeAlias = (
    end_txn_v0.EndTxnRequest | end_txn_v1.EndTxnRequest | end_txn_v2.EndTxnRequest
    | end_txn_v3.EndTxnRequest | end_txn_v4.EndTxnRequest | end_txn_v5.EndTxnRequest
)
EndTxnResponses: TypeAlias = (
    end_txn_v0.EndTxnResponse | end_txn_v1.EndTxnResponse | end_txn_v2.EndTxnResponse
    | end_txn_v3.EndTxnResponse | end_txn_v4.EndTxnResponse | end_txn_v5.EndTxnResponse
)
WriteTxnMarkersRequests: TypeAlias = write_txn_markers_v1.WriteTxnMarkersRequest
WriteTxnMarkersResponses: TypeAlias = write_txn_markers_v1.WriteTxnMarkersResponse
TxnOffsetCommitRequests: TypeAlias = (
    txn_offset_commit_v0.TxnOffsetCommitRequest | txn_offset_commit_v1.TxnOffsetCommitRequest
    | txn_offset_commit_v2.TxnOffsetCommitRequest | txn_offset_commit_v3.TxnOffsetCommitRequest
    | txn_offset_commit_v4.TxnOffsetCommitRequest | txn_offset_commit_v5.TxnOffsetCommitRequest
)
TxnOffsetCommitResponses: TypeAlias = (
    txn_offset_commit_v0.TxnOffsetCommitResponse | txn_offset_commit_v1.TxnOffsetCommitResponse
    | txn_offset_commit_v2.TxnOffsetCommitResponse | txn_offset_commit_v3.TxnOffsetCommitResponse
    | txn_offset_commit_v4.TxnOffsetCommitResponse | txn_offset_commit_v5.TxnOffsetCommitResponse
)
DescribeTransactionsRequests: TypeAlias = describe_transactions_v0.DescribeTransactionsRequest
DescribeTransactionsResponses: TypeAlias = describe_transactions_v0.DescribeTransactionsResponse
ListTransactionsRequests: TypeAlias = (
    list_transactions_v0.ListTransactionsRequest | list_transactions_v1.ListTransactionsRequest
)
ListTransactionsResponses: TypeAlias = (
    list_transactions_v0.ListTransactionsResponse | list_transactions_v1.ListTransactionsResponse
)
DescribeProducersRequests: TypeAlias = describe_producers_v0.DescribeProducersRequest
DescribeProducersResponses: TypeAlias = describe_producers_v0.DescribeProducersResponse

DescribeAclsRequests: TypeAlias = (
    describe_acls_v1.DescribeAclsRequest
    | describe_acls_v2.DescribeAclsRequest
    | describe_acls_v3.DescribeAclsRequest
)
DescribeAclsResponses: TypeAlias = (
    describe_acls_v1.DescribeAclsResponse
    | describe_acls_v2.DescribeAclsResponse
    | describe_acls_v3.DescribeAclsResponse
)
CreateAclsRequests: TypeAlias = (
    create_acls_v1.CreateAclsRequest
    | create_acls_v2.CreateAclsRequest
    | create_acls_v3.CreateAclsRequest
)
CreateAclsResponses: TypeAlias = (
    create_acls_v1.CreateAclsResponse
    | create_acls_v2.CreateAclsResponse
    | create_acls_v3.CreateAclsResponse
)
DeleteAclsRequests: TypeAlias = (
    delete_acls_v1.DeleteAclsRequest
    | delete_acls_v2.DeleteAclsRequest
    | delete_acls_v3.DeleteAclsRequest
)
DeleteAclsResponses: TypeAlias = (
    delete_acls_v1.DeleteAclsResponse
    | delete_acls_v2.DeleteAclsResponse
    | delete_acls_v3.DeleteAclsResponse
)
SaslHandshakeRequests: TypeAlias = (
    sasl_handshake_v0.SaslHandshakeRequest | sasl_handshake_v1.SaslHandshakeRequest
)
SaslHandshakeResponses: TypeAlias = (
    sasl_handshake_v0.SaslHandshakeResponse | sasl_handshake_v1.SaslHandshakeResponse
)
SaslAuthenticateRequests: TypeAlias = (
    sasl_authenticate_v0.SaslAuthenticateRequest | sasl_authenticate_v1.SaslAuthenticateRequest
    | sasl_authenticate_v2.SaslAuthenticateRequest
)
SaslAuthenticateResponses: TypeAlias = (
    sasl_authenticate_v0.SaslAuthenticateResponse
    | sasl_authenticate_v1.SaslAuthenticateResponse
    | sasl_authenticate_v2.SaslAuthenticateResponse
)
DescribeUserScramCredentialsRequests: TypeAlias = (
    describe_user_scram_credentials_v0.DescribeUserScramCredentialsRequest
)
DescribeUserScramCredentialsResponses: TypeAlias = (
    describe_user_scram_credentials_v0.DescribeUserScramCredentialsResponse
)
AlterUserScramCredentialsRequests: TypeAlias = (
    alter_user_scram_credentials_v0.AlterUserScramCredentialsRequest
)
AlterUserScramCredentialsResponses: TypeAlias = (
    alter_user_scram_credentials_v0.AlterUserScramCredentialsResponse
)
