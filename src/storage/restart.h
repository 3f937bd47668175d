// storage/restart.h — what a restarting node keeps of its log after its newest snapshot.
//
// recover_log (log.h) reads what the segments hold; these rules decide what of it the node
// restarts with. They are one pure function so that the server (server/recovery.cc) and the
// simulator's byte-for-byte data directories (sim/sim_disk.cc) apply the same rules — the
// simulator found every one of them.
//
// 1. Leftovers of a replaced log. Installing a leader's snapshot replaces the node's whole
//    log by the snapshot point but writes nothing to the log: the old log's entries after
//    the snapshot's index stay on disk until the leader's entries overwrite them. They are
//    recognised two ways. An entry of a term below the snapshot's cannot follow it in any log
//    (terms never go down along a log). And the core installs only if its log does not hold
//    the snapshot's last entry: if the log's entry at that index has another term, the entries
//    after it are leftovers unless one was written after the first hard state whose commit
//    reached that index (before the install the commit was below it; the leader's first
//    entries after the install follow it, and replace every leftover).
// 2. The term only a snapshot knows. With no log (durability none) the snapshot's term is the
//    newest term the node knows of: the hard state takes it, with the vote given.
// 3. A hard state whose commit reaches the snapshot, made durable before this run appends any
//    entry: it marks where the entries written after a leader's snapshot start, which rule 1
//    relies on. The install's own copy may be gone (a crash right after the install), and the
//    core would not write it again (it restarts with that commit).
//
// Thread-safety: a pure function.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "raft/types.h"
#include "storage/log.h"

namespace hmdb::storage {

struct RestartLog {
  raft::HardState hard_state;
  std::vector<raft::Entry> entries;  // contiguous after the snapshot
  // Rule 3: append and sync hard_state (its commit raised to the snapshot's index) before
  // anything else is appended.
  bool write_hard_state = false;
  std::string dropped;  // rule 1: what was dropped, in words for the log ("" if nothing)
};

// log: what recover_log read after the snapshot (its entries are moved out). snapshot: the
// newest snapshot loaded, if any. vote_from_snapshot: the vote to assume under rule 2 (a
// single node votes for itself; a cluster node for nobody). writes_log: false in durability
// none, which has no log to write rule 3's hard state to. drop_leftovers: false only for the
// simulator's planted bug (recovery_keeps_replaced_log).
RestartLog restart_log(RecoveredLog& log, const std::optional<raft::SnapshotMeta>& snapshot,
                       raft::NodeId vote_from_snapshot, bool writes_log, bool drop_leftovers = true);

}  // namespace hmdb::storage
