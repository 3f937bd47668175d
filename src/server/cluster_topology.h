// server/cluster_topology.h — how a clustered hmdb presents itself to Redis Cluster clients:
// one shard that owns all 16,384 hash slots, whose master is the Raft leader and whose
// replicas are the other members (followers and learners).
//
// Cluster clients (redis-py's RedisCluster, ioredis' Cluster, node-redis' createCluster,
// redis-cli -c, redis-benchmark --cluster) ask one node for the topology (CLUSTER SLOTS,
// CLUSTER NODES, CLUSTER SHARDS, CLUSTER INFO), send each key's command to the master of
// its slot, and ask again after a -MOVED or a lost connection. Every member answers with
// what it knows: the leader it follows (or, during an election, the last one it knew), the
// member list and addresses from its address book (server/cluster.cc). So after a leader
// change every node reports the new master as soon as it hears from it.
//
// Room for several shards later: a Topology is a list of shards, each with its slot ranges,
// its master and its replicas; today Node builds exactly one (several Raft groups, each
// owning slot ranges, would each be a shard).
//
// The renderings follow Redis 7's replies (src/cluster.c, cluster_legacy.c): node names
// are 40 lowercase hex characters; an IPv6 address is written without brackets, as Redis
// writes it. Maps (CLUSTER SHARDS, the endpoint metadata of CLUSTER SLOTS) are maps in
// RESP3 and arrays of key, value pairs in RESP2, as Redis sends them.
//
// Pure: no I/O, no clock (the caller gives what it needs).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hmdb/reply.h"

namespace hmdb::server {

// The 40-character node name Redis clients expect, derived stably from the cluster id
// (--cluster-id) and the node id: the same on every member and across restarts, different
// for the same node id in another cluster.
std::string redis_node_name(std::string_view cluster_id, uint64_t node_id);
// The shard's 40-character id (CLUSTER MYSHARDID, CLUSTER SHARDS), from the cluster id.
std::string redis_shard_name(std::string_view cluster_id, uint64_t shard);

struct ClusterTopology {
  struct Node {
    uint64_t id = 0;        // hmdb node id
    std::string name;       // redis_node_name()
    std::string host;       // client address, without brackets
    uint16_t port = 0;      // client port
    uint16_t bus_port = 0;  // peer port (Redis' cluster bus port), 0 if unknown
    bool myself = false;
    // The replication offset Redis reports: the log index this node is known to hold
    // (its applied index for itself; on the leader, each follower's match index; else 0).
    uint64_t offset = 0;
    // Only the leader knows whether its links to the others are up: false marks a node
    // the leader cannot reach ("fail?" in CLUSTER NODES, health "fail" in CLUSTER SHARDS).
    bool reachable = true;
  };
  struct Shard {
    std::string name;                                  // redis_shard_name()
    std::vector<std::pair<uint32_t, uint32_t>> slots;  // inclusive ranges
    bool has_master = false;                           // nodes[0] is the master
    std::vector<Node> nodes;                           // master first, then replicas
  };
  std::vector<Shard> shards;
  // True while this node knows a live leader (cluster_state:ok); false during an election
  // or when cut off from a majority.
  bool state_ok = false;
  uint64_t epoch = 0;  // the raft term: cluster_current_epoch and each node's config epoch
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
};

// CLUSTER SLOTS: [[start, end, [host, port, name, {}], replica...], ...], one entry per
// slot range that has a master.
void reply_cluster_slots(const ClusterTopology& t, Reply& r);
// CLUSTER SHARDS: [{slots: [start, end, ...], nodes: [{id, port, ip, endpoint, role,
// replication-offset, health}, ...]}, ...].
void reply_cluster_shards(const ClusterTopology& t, Reply& r);
// CLUSTER NODES: one line per node, "<name> <host:port@bus> <flags> <master> <ping-sent>
// <pong-recv> <epoch> <link> [<slot range>...]\n".
std::string cluster_nodes_text(const ClusterTopology& t);
// CLUSTER INFO: the `field:value\r\n` lines of Redis' reply.
std::string cluster_info_text(const ClusterTopology& t);
// The Node (and its shard) whose myself is set, or nullptr.
const ClusterTopology::Node* cluster_myself(const ClusterTopology& t, const ClusterTopology::Shard** shard = nullptr);

}  // namespace hmdb::server
