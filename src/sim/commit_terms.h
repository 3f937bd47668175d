// sim/commit_terms.h — the term in which each log index was first known committed, for the
// simulator's leader-completeness check.
//
// Raft's Leader Completeness (§5.4.3): an entry committed in term T is in the log of every
// leader of a term > T. A leader of a term <= T may legally lack it: a vote granted in term
// 2 and delivered late can make a term-2 leader after an entry was committed in term 3 (the
// simulator's seed 73739 did exactly that, and the earlier check, which demanded every
// committed entry of every new leader, failed it). So the check needs, per index, the term
// in which it was committed.
//
// The simulator learns it from commit indexes: a node of term t whose commit index is c
// proves every index <= c committed in term t or earlier (a leader commits in its own term;
// a follower learnt c from a leader of a term <= its own). The lowest such t per index is
// kept; it is an upper bound of the true commit term, so the check never fires on a legal
// history, and it is the tightest bound that commit indexes show. (The simulator looks at
// commit indexes at the end of each unit: a commit that only a node which moved to a later
// term in the same unit had seen is attributed to that later term, which can only make the
// check weaker there, never wrong.) The terms never decrease
// along the log (an index committed in term t makes every earlier index committed in t),
// which keeps an update to the indexes that change and a query to a binary search.
#pragma once

#include <cstdint>
#include <vector>

#include "raft/types.h"

namespace hmdb::sim {

class CommitTerms {
 public:
  // A node in term `term` has commit index `commit`.
  void observe(raft::Index commit, raft::Term term) {
    if (commit == 0) return;
    if (terms_.size() <= commit) terms_.resize(commit + 1, kUnknown);
    // Non-decreasing along the log: the indexes whose term drops form a suffix of [1, commit].
    for (raft::Index i = commit; i >= 1 && terms_[i] > term; i--) terms_[i] = term;
  }

  // The last index known committed in a term below `term` (0 if none): every leader of
  // `term` must hold the committed entries up to it, and need not hold any later one.
  raft::Index required_of_leader(raft::Term term) const {
    raft::Index a = 1, b = terms_.size();  // the first index whose term is >= term is in [a, b]
    while (a < b) {
      raft::Index mid = a + (b - a) / 2;
      if (terms_[mid] < term) a = mid + 1;
      else b = mid;
    }
    return a - 1;
  }

  // The term index i was first known committed in (kUnknown if not known committed).
  raft::Term term_of(raft::Index i) const { return i < terms_.size() ? terms_[i] : kUnknown; }

  static constexpr raft::Term kUnknown = UINT64_MAX;

 private:
  std::vector<raft::Term> terms_{kUnknown};  // [0] unused
};

}  // namespace hmdb::sim
