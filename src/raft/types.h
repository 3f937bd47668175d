// raft/types.h — the values the consensus core takes in and hands out.
//
// These types are shared by the core, the storage layer (which persists Entry and
// HardState), the shell (which sends Message over TCP) and the simulator.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hmdb::raft {

using NodeId = uint64_t;  // 0 means "none"
using Term = uint64_t;
using Index = uint64_t;

inline constexpr NodeId kNoNode = 0;

enum class EntryType : uint8_t {
  kNormal = 1,      // data is a command batch (core/batch.h)
  kConfChange = 2,  // data is an encoded ConfChange
  kNoop = 3,        // appended by a new leader to commit entries of earlier terms
};

struct Entry {
  Term term = 0;
  Index index = 0;
  EntryType type = EntryType::kNormal;
  uint32_t schema_version = 0;  // of the app that proposed it (0 for kNoop/kConfChange)
  std::string data;
  bool operator==(const Entry&) const = default;
};

// What must be durable before the node answers a vote or an append (Raft §5, Figure 2).
struct HardState {
  Term term = 0;
  NodeId vote = kNoNode;
  Index commit = 0;  // persisted as a hint; commit is re-learnt from the leader after a restart
  bool operator==(const HardState&) const = default;
};

struct ConfState {
  std::vector<NodeId> voters;    // sorted
  std::vector<NodeId> learners;  // sorted, disjoint from voters
  bool operator==(const ConfState&) const = default;
};

enum class ConfChangeType : uint8_t { kAddLearner = 1, kPromote = 2, kRemove = 3, kAddVoter = 4 };
struct ConfChange {
  ConfChangeType type = ConfChangeType::kAddLearner;
  NodeId node = kNoNode;
  std::string context;  // e.g. the node's addresses; opaque to the core
};

struct SnapshotMeta {
  Index index = 0;  // last index the snapshot covers
  Term term = 0;    // term of that entry
  ConfState conf;
  uint32_t schema_version = 0;
  bool operator==(const SnapshotMeta&) const = default;
};

struct Snapshot {
  SnapshotMeta meta;
  std::string data;  // the app's encoding (possibly one chunk of it while streaming)
};

enum class MessageType : uint8_t {
  kPreVote = 1,
  kPreVoteResponse,
  kVote,
  kVoteResponse,
  kAppend,
  kAppendResponse,
  kHeartbeat,
  kHeartbeatResponse,
  kSnapshot,          // one chunk of a snapshot
  kSnapshotResponse,
  kTimeoutNow,        // leadership transfer: start an election now
  kReadIndex,         // follower forwards a read-index request to the leader
  kReadIndexResponse,
};

struct Message {
  MessageType type = MessageType::kAppend;
  NodeId from = kNoNode;
  NodeId to = kNoNode;
  Term term = 0;
  // kAppend: entries follow (log_index, log_term). kVote/kPreVote: candidate's last entry.
  Index log_index = 0;
  Term log_term = 0;
  Index commit = 0;
  std::vector<Entry> entries;
  // Responses: reject + hint for fast backtracking (index/term of the conflict).
  bool reject = false;
  Index reject_hint = 0;
  Term reject_term = 0;
  // kSnapshot: one chunk. offset/total in bytes of the snapshot data; meta on every chunk.
  std::optional<SnapshotMeta> snapshot_meta;
  uint64_t snapshot_offset = 0;
  uint64_t snapshot_total = 0;
  bool snapshot_last = false;
  std::string snapshot_chunk;
  // Read-index and heartbeat context (opaque request id).
  uint64_t context = 0;
};

}  // namespace hmdb::raft
