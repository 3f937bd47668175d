// sim/sim_disk.h — a simulated node's data directory, byte for byte, read back at a restart
// by the server's own recovery code.
//
// The server's storage code runs on an in-memory file system: storage::LogWriter appends
// and syncs the log (segments, hard-state copies, compaction), storage::write_snapshot
// writes snapshot files, and a restart reads them back with storage::read_latest_snapshot
// and storage::recover_log, then applies server/recovery.cc's rules. So what a restarted
// node holds is what the server would hold: a torn tail is cut, and damage the reader
// classifies as corruption makes the node refuse to start (the server's exit code 2).
//
// The file system forgets at a power loss what was not synced; when the crash tears a
// write, a prefix of the unsynced bytes survives, cut anywhere (inside a record too), and
// possibly with an earlier 512-byte sector of it missing (sectors reach the platter in no
// particular order). The simulator may also damage synced bytes (a bit flip in the log or
// in the newest snapshot, found at the next start) or, only when asked, make an fsync lie
// (synced records vanish): docs/simulator.md ("Disk") says which of these the node can
// detect and what it does.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raft/types.h"
#include "sim/random.h"

namespace hmdb::storage {
class LogWriter;
}

namespace hmdb::sim {

class MemEnv;

// What a restart reads back (server/recovery.cc's result), or why the node refuses to start.
struct Recovered {
  bool started = true;             // false: the server exits with code 2; `problem` says why
  std::string problem;
  std::vector<std::string> notes;  // what recovery logged: a torn tail cut, leftovers dropped
  raft::HardState hard_state;
  std::optional<raft::SnapshotMeta> snapshot;
  std::string snapshot_data;       // the app payload of `snapshot`
  std::vector<raft::Entry> entries;
};

// Models of a server whose recovery skips a detection (planted bugs: tests/sim).
struct RecoveryBugs {
  // Damage in the middle of the log is cut off as if it were a torn tail (LevelDB's
  // "skip"/repair modes): the node starts without what it had acknowledged.
  bool cut_corrupt_log = false;
  // A snapshot that fails its checksum is loaded anyway.
  bool ignore_snapshot_checksum = false;
  // Entries of the log a leader's snapshot replaced come back at a restart (recovery.cc
  // before it dropped them): the restored log's terms go back after the snapshot.
  bool keep_replaced_log = false;
};

// What a power loss does to the bytes written but not yet synced.
enum class Tear : uint8_t {
  kNone,    // they are all lost
  kPrefix,  // a prefix of them survives, cut at any byte (inside a record too)
  kHole,    // a prefix survives, but one earlier 512-byte sector of it is zeros
};

class DataDir {
 public:
  // Bytes per log segment: small, so that runs roll segments and compaction deletes them
  // (the server's default is 64 MiB; the code paths are the same).
  static constexpr uint64_t kSegmentBytes = 2048;
  // Zeros written ahead of the appends (the server's 1 MiB, scaled as the segments are):
  // power losses then meet records, torn records and zeros in every combination.
  static constexpr uint64_t kPreallocateBytes = 600;
  static constexpr uint64_t kSectorBytes = 512;

  DataDir();
  ~DataDir();
  DataDir(const DataDir&) = delete;
  DataDir& operator=(const DataDir&) = delete;

  // Nothing was ever written (a node that never ran).
  bool empty() const;

  // One write the disk thread appended; `sync` makes it durable (a completed write).
  void append(const raft::HardState* hard_state, const std::vector<raft::Entry>& entries, bool sync);
  // LogWriter::compact after a durable snapshot at index.
  void compact(raft::Index index);
  // A snapshot file made durable (temp file, sync, rename, directory sync), then the older
  // ones removed, as the server does for its own snapshots and for a leader's.
  void save_snapshot(const raft::SnapshotMeta& meta, std::string_view data);

  // Power loss: the writer is gone and the unsynced bytes go as `tear` says.
  struct PowerLoss {
    std::string what;   // for the trace
    bool torn = false;  // some unsynced bytes survived
    bool hole = false;  // and an earlier sector of them is missing
  };
  PowerLoss power_loss(Tear tear, Rng& rng);
  // Damage to synced data while the node is down. Each returns a description for the trace,
  // or an empty string if there was nothing to damage.
  // A bit flip in the log before its last record (a valid record always follows it, or it
  // is in an older segment), or anywhere with allow_last_record (then it can look torn).
  std::string flip_log_bit(Rng& rng, bool allow_last_record);
  // A bit flip in the newest snapshot's payload.
  std::string flip_snapshot_bit(Rng& rng);
  // A lying fsync: the last 1-3 synced records of the log never reached the platter.
  std::string lose_synced_tail(Rng& rng);

  // server/recovery.cc on this directory. clustered: the node is one of a cluster (not the
  // single-node server, whose vote is always itself).
  Recovered recover(const RecoveryBugs& bugs, bool clustered);

 private:
  void open_writer();

  std::unique_ptr<MemEnv> env_;
  std::unique_ptr<storage::LogWriter> writer_;
  std::map<raft::Index, raft::SnapshotMeta> snapshot_meta_;  // of every snapshot file written
};

}  // namespace hmdb::sim
