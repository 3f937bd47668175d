// core/key_slot.h — the Redis Cluster hash slot of a key: CRC16 (XMODEM) of the key, or of
// its hash tag, modulo 16,384.
//
// hmdb presents a cluster to clients as a Redis Cluster (docs/cluster.md, "Cluster-aware
// clients"): today one shard owns every slot, so the slot decides nothing about where a key
// lives, but a -MOVED redirect must carry the key's real slot. Cluster clients (redis-py's
// RedisCluster, ioredis' Cluster, node-redis' createCluster) compute the slot themselves and
// remap exactly the slot a redirect names; a wrong slot sends them back to the old node.
//
// The hash tag rule is Redis' (src/cluster.c keyHashSlot): if the key holds a '{' and a later
// '}' with at least one character between the first '{' and the first '}' after it, only
// those characters are hashed ("{user1000}.following" and "{user1000}.followers" share a
// slot; "{}x" and "x{" hash whole).
//
// Pure: no state, no I/O.
#pragma once

#include <cstdint>
#include <string_view>

namespace hmdb::core {

// The number of hash slots of a Redis Cluster (fixed by the protocol).
inline constexpr uint32_t kClusterSlots = 16384;

// CRC16, polynomial 0x1021, initial value 0, no reflection (CRC-16/XMODEM), as Redis
// Cluster uses it: crc16("123456789") == 0x31C3.
uint16_t crc16_xmodem(std::string_view data);

// The hash slot of `key`, in [0, kClusterSlots).
uint32_t key_hash_slot(std::string_view key);

}  // namespace hmdb::core
