// storage/restart.cc — what a restarting node keeps of its log (see restart.h).
#include "storage/restart.h"

#include <fmt/format.h>

namespace hmdb::storage {

RestartLog restart_log(RecoveredLog& log, const std::optional<raft::SnapshotMeta>& snapshot,
                       raft::NodeId vote_from_snapshot, bool writes_log, bool drop_leftovers) {
  const raft::Index after = snapshot ? snapshot->index : 0;
  const raft::Term after_term = snapshot ? snapshot->term : 0;
  RestartLog out;
  if (drop_leftovers && !log.entries.empty() &&
      (log.entries.front().term < after_term ||
       (log.term_at_after_index != 0 && log.term_at_after_index != after_term && !log.entries_after_commit_reached))) {
    out.dropped = fmt::format("entries {}..{} (terms {}..{}): left over from the log that the snapshot at index {} "
                              "(term {}) replaced",
                              log.entries.front().index, log.entries.back().index, log.entries.front().term,
                              log.entries.back().term, after, after_term);
    log.entries.clear();
  }
  out.hard_state = log.hard_state;
  if (out.hard_state.term < after_term) {
    out.hard_state.term = after_term;
    out.hard_state.vote = vote_from_snapshot;
  }
  if (writes_log && out.hard_state.commit < after) {
    out.hard_state.commit = after;
    out.write_hard_state = true;
  }
  out.entries = std::move(log.entries);
  return out;
}

}  // namespace hmdb::storage
