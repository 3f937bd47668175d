// core/digest_marks.h — the state digests a node took at digest marks (CLUSTER DIGEST MARK).
//
// A digest mark is an item of a log entry (core/batch.h, item type 4). Every node that
// applies the entry hashes its state where the mark stands in it — the digest CLUSTER DIGEST
// gives (core/state.h: the app's state at the active schema version, the request table, the
// active version) — and keeps the result here. Since every node hashes exactly the same
// point of the log, `hmdb cluster verify` compares the nodes while writes flow, instead of
// waiting for them all to sit at one applied index (docs/cluster.md, "Verifying").
//
// Hashing a large state takes time (tens of ms per million small records), so the embedder
// may take it elsewhere (MarkHasher): the server forks a child that hashes the copy-on-write
// image of the state at the mark while the parent goes on (server/digest_child.cc); until
// the child reports, the mark is pending. Without a hasher (the simulator, tests, a server
// replaying its log at startup) the digest is taken here, at once.
//
// A mark is named by the index of its entry. The server proposes an entry as soon as a mark
// is in it (Replica::batch_full), so its digest is normally of the state after that entry;
// should two marks share an entry anyway (the simulator batches without that rule, a mark
// served late behind its session's writes), the later one's is kept.
// Beside the digest, a mark keeps a sketch of the app's records at the mark (core/
// record_sketch.h) when the app lists them (StateMachine::records), taken in the same place
// as the digest, so that `hmdb cluster verify` names the records two nodes hold differently.
// And the digest of the ACL users there once they are replicated (AclUsers::logged; the
// users are not the app's state, so they are kept beside its digest rather than in it, which
// `hmdb dry-run` and migrations compare without users), so that verify compares them too.
// They are few: hashed here, on the applying thread, never pending.
// Only the last kDigestMarksKept marks are kept; they are not part of the replicated state
// (a snapshot does not carry them, a restart that replays the log records them again).
//
// Pure: no I/O, no clock. Thread-safety: none; the replica's thread owns it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "core/record_sketch.h"
#include "core/state.h"

namespace hmdb::core {

// Marks whose digests a node keeps. A verification asks for its mark within seconds of
// logging it; 16 leaves room for several operators (or a script in a loop) at once.
inline constexpr size_t kDigestMarksKept = 16;

struct DigestMark {
  uint64_t index = 0;           // the entry that holds the mark
  StateDigest digest;           // the digest, and the schema version it hashed the app's state at
  uint32_t active_version = 0;  // the active schema version there (digest.schema_version differs
                                // when this binary cannot express its state at it)
  bool pending = false;         // a MarkHasher is taking the digest (digest not set yet)
  bool failed = false;          // ... and could not (the server's log says why)
  // The app's records at the mark, at digest.schema_version (null: it does not list them).
  std::shared_ptr<const RecordSketch> records = nullptr;
  // The replicated ACL users' digest at the mark (users_digest); none before any ACL change
  // was logged (each node's users are then its own file's).
  std::optional<uint64_t> users = std::nullopt;
};

// The sketch of the app's records where the digest `d` was taken (null if it lists none).
inline std::shared_ptr<const RecordSketch> mark_records(const StateMachine& app, const StateDigest& d) {
  std::optional<RecordSketch> s = record_sketch(app, d.schema_version);
  return s ? std::make_shared<const RecordSketch>(std::move(*s)) : nullptr;
}

// Takes the digest at a mark elsewhere than on the applying thread.
class MarkHasher {
 public:
  virtual ~MarkHasher() = default;
  // The state at the mark of entry `index` is `app` with `requests`, now: take its digest
  // (state_digest) and its records' sketch (mark_records), and report them with
  // DigestMarks::finish or fail. False: not taken (the digest is taken here instead, at
  // once).
  virtual bool hash_later(uint64_t index, const StateMachine& app, const RequestTable& requests) = 0;
};

class DigestMarks {
 public:
  // Null: every digest is taken at once.
  void set_hasher(MarkHasher* hasher) { hasher_ = hasher; }
  // The users logged ACL changes apply to (null: none, as in the simulator).
  void set_users(const AclUsers* users) { users_ = users; }
  // A mark of entry `index` is applied: the state is `app` with `requests`.
  void take(uint64_t index, const StateMachine& app, const RequestTable& requests) {
    DigestMark m{index, {}, app.active_schema_version()};
    if (users_ && users_->logged()) m.users = users_digest(*users_);
    if (hasher_ && hasher_->hash_later(index, app, requests)) m.pending = true;
    else {
      m.digest = state_digest(app, requests);
      m.records = mark_records(app, m.digest);
    }
    record(m);
  }
  // The digest a MarkHasher took for the pending mark at `index` (dropped if no longer kept).
  void finish(uint64_t index, const StateDigest& d, std::shared_ptr<const RecordSketch> records = nullptr) {
    if (DigestMark* m = find_mutable(index); m && m->pending) {
      m->digest = d;
      m->records = std::move(records);
      m->pending = false;
    }
  }
  void fail(uint64_t index) {
    if (DigestMark* m = find_mutable(index); m && m->pending) {
      m->pending = false;
      m->failed = true;
    }
  }

  // Keeps m, dropping the oldest mark if kDigestMarksKept are kept already; a mark at the
  // index of the newest one replaces it (two marks in one entry: the later stands).
  void record(const DigestMark& m) {
    if (count_ > 0 && newest().index == m.index) {
      ring_[(next_ + kDigestMarksKept - 1) % kDigestMarksKept] = m;
      return;
    }
    ring_[next_] = m;
    next_ = (next_ + 1) % kDigestMarksKept;
    if (count_ < kDigestMarksKept) count_++;
  }
  // The mark of the entry at `index`, or null if none is kept.
  const DigestMark* find(uint64_t index) const { return const_cast<DigestMarks*>(this)->find_mutable(index); }
  size_t size() const { return count_; }
  // The index of the oldest mark kept (0: none).
  uint64_t oldest_index() const { return count_ == 0 ? 0 : ring_[(next_ + kDigestMarksKept - count_) % kDigestMarksKept].index; }

 private:
  const DigestMark& newest() const { return ring_[(next_ + kDigestMarksKept - 1) % kDigestMarksKept]; }
  DigestMark* find_mutable(uint64_t index) {
    for (size_t i = 0; i < count_; i++) {
      DigestMark& m = ring_[(next_ + kDigestMarksKept - 1 - i) % kDigestMarksKept];
      if (m.index == index) return &m;
    }
    return nullptr;
  }

  std::array<DigestMark, kDigestMarksKept> ring_{};
  size_t next_ = 0;   // where the next mark goes
  size_t count_ = 0;  // marks kept
  MarkHasher* hasher_ = nullptr;
  const AclUsers* users_ = nullptr;
};

}  // namespace hmdb::core
