// core/read_index.h — linearizable reads on the leader: queued, asked of the consensus core,
// and released once the applied index reaches their read index.
//
// The reads that arrive in one loop turn share one read_index() request (one heartbeat
// round): queue() collects them, ask() hands them to the core under a fresh context, the
// core's ReadState names the index they must wait for (answered()), and ready(applied)
// releases those whose index is applied. fail_all() empties every stage (the node stopped
// leading: the core drops its pending requests then).
//
// Pure bookkeeping: no I/O, no clock. Thread-safety: none (the loop thread).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/write_tracker.h"
#include "raft/types.h"

namespace hmdb::core {

class ReadIndex {
 public:
  void queue(ReplySlot slot) { batch_.push_back(slot); }
  bool has_queued() const { return !batch_.empty(); }

  // Hands this turn's reads to `ask(context) -> bool` (raft.read_index). Returns the reads
  // the core refused (not leader), for the caller to answer; none if it accepted them.
  template <class Ask>
  std::vector<ReplySlot> ask(Ask&& ask) {
    std::vector<ReplySlot> slots;
    slots.swap(batch_);
    if (slots.empty()) return {};
    const uint64_t context = next_context_++;
    if (!ask(context)) return slots;
    asked_.emplace(context, std::move(slots));
    return {};
  }

  // The core's ReadState for `context`: those reads wait until `index` is applied. A context
  // this queue does not know (answered after fail_all()) is ignored.
  void answered(uint64_t context, raft::Index index) {
    auto it = asked_.find(context);
    if (it == asked_.end()) return;
    ready_.emplace_back(index, std::move(it->second));
    asked_.erase(it);
  }

  // The reads whose read index is applied, in the order their rounds were answered.
  std::vector<ReplySlot> ready(raft::Index applied) {
    std::vector<ReplySlot> out;
    size_t keep = 0;
    for (size_t i = 0; i < ready_.size(); i++) {
      if (ready_[i].first <= applied) {
        out.insert(out.end(), ready_[i].second.begin(), ready_[i].second.end());
      } else {
        if (keep != i) ready_[keep] = std::move(ready_[i]);
        keep++;
      }
    }
    ready_.resize(keep);
    return out;
  }
  bool has_ready() const { return !ready_.empty(); }

  // Every read in every stage, emptied (queued first, then asked, then waiting for apply).
  std::vector<ReplySlot> fail_all() {
    std::vector<ReplySlot> all;
    all.swap(batch_);
    for (auto& [context, slots] : asked_) all.insert(all.end(), slots.begin(), slots.end());
    asked_.clear();
    for (auto& [index, slots] : ready_) all.insert(all.end(), slots.begin(), slots.end());
    ready_.clear();
    return all;
  }

  // Reads in any stage (INFO replication: pending_reads).
  size_t pending() const {
    size_t n = batch_.size();
    for (const auto& [context, slots] : asked_) n += slots.size();
    for (const auto& [index, slots] : ready_) n += slots.size();
    return n;
  }

 private:
  std::vector<ReplySlot> batch_;  // this turn's, not yet asked
  std::unordered_map<uint64_t, std::vector<ReplySlot>> asked_;            // context -> reads
  std::vector<std::pair<raft::Index, std::vector<ReplySlot>>> ready_;     // read index -> reads
  uint64_t next_context_ = 1;
};

}  // namespace hmdb::core
