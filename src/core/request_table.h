// core/request_table.h — the request ids clients tagged their writes with (HMDB.REQ), each
// with the first outcome of its write: what lets a client retry a write whose reply it lost
// and get that outcome back instead of applying the write again.
//
// Raft's dissertation (§6.3) gives each client a session that remembers the reply of its
// latest request; hmdb keys the same record by a request id the client chooses (a UUID, or
// client-id:counter), so a client needs no registration and any Redis library can send it
// (docs/kv-commands.md, "Retries that never apply twice").
//
// The table is replicated state, like the app's: only the apply path changes it, from the
// log alone (core/apply.cc), so every node holds the same table at the same index. It is
// saved in snapshots and loaded from them (core/state.h), and its digest is part of the
// state digest. Nothing here reads a clock: an entry's age is measured in the leader's
// time stamped into the batches, and eviction happens at apply, in log order.
//
// Bounds (all named below; they are part of the replicated state's definition, so every
// node must have the same values: they are constants, not flags). An entry is evicted,
// oldest first (in log order), when
//   - its batch's leader time is kRequestRetentionMs or more behind the leader time of the
//     batch being applied, or
//   - the table would otherwise hold more than kRequestTableBytesMax, counting each entry
//     as its id, its kept reply and kRequestEntryOverheadBytes.
// A retry after its id was evicted applies again: a client retries within minutes, and
// within a few hundred thousand other tagged writes (docs/kv-commands.md has the figures).
// A first reply longer than kRequestReplyKeptBytesMax is not kept, only its length: a retry
// of it is answered with an error that says so (it never applies twice).
//
// Thread-safety: none (the loop thread; a snapshot child reads its copy-on-write image).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include <absl/container/flat_hash_map.h>

#include "core/request.h"
#include "hmdb/codec.h"
#include "hmdb/reply.h"

namespace hmdb::core {

// A first reply up to this long is kept for retries; a longer one only by its length.
inline constexpr size_t kRequestReplyKeptBytesMax = 4096;
// Entries older than this, in the leader's time, are evicted at the next apply.
inline constexpr uint64_t kRequestRetentionMs = 10 * 60 * 1000;
// The table's size bound, and what each entry counts for beyond its id and kept reply
// (about what its record and its slot in the index take in memory).
inline constexpr uint64_t kRequestTableBytesMax = 64ull << 20;
inline constexpr uint64_t kRequestEntryOverheadBytes = 128;
// The version byte of the table's encoding in a snapshot (docs/formats.md).
inline constexpr uint8_t kRequestTableFormat = 1;

class RequestTable {
 public:
  struct Entry {
    std::string id;
    uint64_t time_ms = 0;       // leader time of the batch that applied it first
    uint64_t index = 0;         // log index of that batch
    uint64_t command_hash = 0;  // XXH3-64 of the wrapped command as logged (batch.h)
    Protocol protocol = Protocol::kResp2;  // the protocol its reply is rendered in
    uint64_t reply_bytes = 0;   // length of the first reply
    std::string reply;          // the first reply, if kept (reply_bytes <= kRequestReplyKeptBytesMax)
    bool kept() const { return reply.size() == reply_bytes; }
  };
  // Counters of this node since it started (not replicated, not saved).
  struct Stats {
    uint64_t repeats = 0;              // retries answered from the table
    uint64_t conflicts = 0;            // ids sent again with another command
    uint64_t evicted_by_age = 0;
    uint64_t evicted_by_bytes = 0;
  };

  RequestTable() = default;
  RequestTable(RequestTable&&) = default;
  RequestTable& operator=(RequestTable&&) = default;
  RequestTable(const RequestTable&) = delete;
  RequestTable& operator=(const RequestTable&) = delete;

  // The entry of `id`, or nullptr.
  const Entry* find(std::string_view id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &entries_[it->second - first_seq_];
  }
  // Records the first outcome of `id`. REQUIRES: id is not in the table, 1..kRequestIdBytesMax
  // bytes; index and time come from the batch being applied (index never below the newest
  // entry's). Evicts the oldest entries beyond the byte bound.
  void insert(std::string_view id, uint64_t time_ms, uint64_t index, uint64_t command_hash, Protocol protocol,
              std::string_view reply);
  // The batch being applied carries leader time now_ms: evicts the entries at least
  // kRequestRetentionMs older, oldest first, stopping at the first younger one (a later
  // leader's clock may lag an earlier one's: log order decides, so eviction stays the same
  // on every node).
  void expire(uint64_t now_ms) {
    while (!entries_.empty() && now_ms >= entries_.front().time_ms && now_ms - entries_.front().time_ms >= kRequestRetentionMs) {
      pop_oldest();
      stats_.evicted_by_age++;
    }
  }

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // The bytes counted against kRequestTableBytesMax.
  uint64_t bytes() const { return bytes_; }
  const Entry& oldest() const { return entries_.front(); }
  Stats& stats() { return stats_; }
  const Stats& stats() const { return stats_; }
  void clear();

  // The snapshot encoding (docs/formats.md, "The request table"): u8 format, varint count,
  // then the entries oldest first.
  void save(Encoder& out) const;
  // Replaces the table with the one encoded at the decoder's position. Returns false (and
  // leaves the table empty) on anything malformed: a bad format byte, an id out of bounds
  // or twice, an unknown protocol, a reply longer than kept or of another length than its
  // record says, indexes going back, more bytes than the bound.
  bool load(Decoder& in);
  // XXH3-64 of save()'s bytes: equal on two nodes iff their tables are (with overwhelming
  // probability). Walks the whole table: for checks and INFO, not per write.
  uint64_t digest() const;

  static uint64_t entry_bytes(std::string_view id, uint64_t kept_reply_bytes) {
    return id.size() + kept_reply_bytes + kRequestEntryOverheadBytes;
  }

 private:
  void pop_oldest();

  std::deque<Entry> entries_;  // in log order, oldest first; never moved (by_id_ views their ids)
  uint64_t first_seq_ = 0;     // sequence number of entries_.front()
  absl::flat_hash_map<std::string_view, uint64_t> by_id_;  // id -> sequence number
  uint64_t bytes_ = 0;
  Stats stats_;
};

}  // namespace hmdb::core
