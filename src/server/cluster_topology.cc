// server/cluster_topology.cc — the Redis Cluster view of a clustered hmdb (see
// cluster_topology.h).
#include "server/cluster_topology.h"

#include <xxhash.h>

#include <fmt/format.h>

#include "core/key_slot.h"

namespace hmdb::server {

namespace {

// 160 bits as 40 lowercase hex characters: XXH3-128 of the text, then 32 bits of a seeded
// XXH3-64. Not a secret, only a stable name that does not collide by accident.
std::string name_of(std::string_view text) {
  const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  const uint64_t extra = XXH3_64bits_withSeed(text.data(), text.size(), 1);
  return fmt::format("{:016x}{:016x}{:08x}", h.high64, h.low64, static_cast<uint32_t>(extra >> 32));
}

void node_entry(const ClusterTopology::Node& n, Reply& r) {
  r.array(4);
  r.bulk(n.host);
  r.integer(n.port);
  r.bulk(n.name);
  r.map(0);  // further endpoints (hostname, ip): none beyond the preferred one
}

std::string slot_ranges_text(const ClusterTopology::Shard& s) {
  std::string t;
  for (const auto& [first, last] : s.slots)
    t += first == last ? fmt::format(" {}", first) : fmt::format(" {}-{}", first, last);
  return t;
}

}  // namespace

std::string redis_node_name(std::string_view cluster_id, uint64_t node_id) {
  return name_of(fmt::format("hmdb-node\n{}\n{}", cluster_id, node_id));
}

std::string redis_shard_name(std::string_view cluster_id, uint64_t shard) {
  return name_of(fmt::format("hmdb-shard\n{}\n{}", cluster_id, shard));
}

void reply_cluster_slots(const ClusterTopology& t, Reply& r) {
  size_t ranges = 0;
  for (const ClusterTopology::Shard& s : t.shards)
    if (s.has_master) ranges += s.slots.size();
  r.array(ranges);
  for (const ClusterTopology::Shard& s : t.shards) {
    if (!s.has_master) continue;
    for (const auto& [first, last] : s.slots) {
      r.array(2 + s.nodes.size());
      r.integer(first);
      r.integer(last);
      for (const ClusterTopology::Node& n : s.nodes) node_entry(n, r);
    }
  }
}

void reply_cluster_shards(const ClusterTopology& t, Reply& r) {
  r.array(t.shards.size());
  for (const ClusterTopology::Shard& s : t.shards) {
    r.map(2);
    r.bulk("slots");
    // A shard without a master serves no slot (Redis: "the node owns no slots").
    r.array(s.has_master ? 2 * s.slots.size() : 0);
    if (s.has_master)
      for (const auto& [first, last] : s.slots) {
        r.integer(first);
        r.integer(last);
      }
    r.bulk("nodes");
    r.array(s.nodes.size());
    for (size_t i = 0; i < s.nodes.size(); i++) {
      const ClusterTopology::Node& n = s.nodes[i];
      const bool master = s.has_master && i == 0;
      r.map(7);
      r.bulk("id");
      r.bulk(n.name);
      r.bulk("port");
      r.integer(n.port);
      r.bulk("ip");
      r.bulk(n.host);
      r.bulk("endpoint");
      r.bulk(n.host);
      r.bulk("role");
      r.bulk(master ? "master" : "replica");
      r.bulk("replication-offset");
      r.integer(static_cast<int64_t>(n.offset));
      r.bulk("health");
      r.bulk(n.reachable ? "online" : "fail");
    }
  }
}

std::string cluster_nodes_text(const ClusterTopology& t) {
  std::string out;
  for (const ClusterTopology::Shard& s : t.shards) {
    for (size_t i = 0; i < s.nodes.size(); i++) {
      const ClusterTopology::Node& n = s.nodes[i];
      const bool master = s.has_master && i == 0;
      std::string flags = n.myself ? "myself," : "";
      flags += master ? "master" : "slave";
      if (!n.reachable) flags += ",fail?";
      const std::string master_name = !master && s.has_master ? s.nodes[0].name : "-";
      out += fmt::format("{} {}:{}@{} {} {} 0 0 {} {}{}\n", n.name, n.host, n.port, n.bus_port, flags, master_name,
                         t.epoch, n.reachable ? "connected" : "disconnected", master ? slot_ranges_text(s) : "");
    }
  }
  return out;
}

std::string cluster_info_text(const ClusterTopology& t) {
  uint64_t assigned = 0, nodes = 0, size = 0;
  for (const ClusterTopology::Shard& s : t.shards) {
    nodes += s.nodes.size();
    if (!s.has_master) continue;
    size++;
    for (const auto& [first, last] : s.slots) assigned += last - first + 1;
  }
  // Slots whose master this node does not hear from now are "possibly failing", as a Redis
  // node says of a master it has not heard from within the node timeout.
  const uint64_t ok = t.state_ok ? assigned : 0;
  return fmt::format(
      "cluster_state:{}\r\ncluster_slots_assigned:{}\r\ncluster_slots_ok:{}\r\ncluster_slots_pfail:{}\r\n"
      "cluster_slots_fail:0\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\n"
      "cluster_my_epoch:{}\r\ncluster_stats_messages_sent:{}\r\ncluster_stats_messages_received:{}\r\n"
      "total_cluster_links_buffer_limit_exceeded:0\r\n",
      t.state_ok && assigned == core::kClusterSlots ? "ok" : "fail", assigned, ok, assigned - ok, nodes, size, t.epoch,
      t.epoch, t.messages_sent, t.messages_received);
}

const ClusterTopology::Node* cluster_myself(const ClusterTopology& t, const ClusterTopology::Shard** shard) {
  for (const ClusterTopology::Shard& s : t.shards)
    for (const ClusterTopology::Node& n : s.nodes)
      if (n.myself) {
        if (shard) *shard = &s;
        return &n;
      }
  return nullptr;
}

}  // namespace hmdb::server
