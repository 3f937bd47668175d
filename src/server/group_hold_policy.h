// server/group_hold_policy.h — whether a group-commit round holds the next one (`always` mode):
// the decision alone, with no clock and no thread. The disk thread (disk_thread.h, "Holding the
// next round") measures the times and feeds them in; tests feed chosen times.
//
// A round that made client writes durable may hold the next round until the clients it
// answered have sent their next writes (the cohort is back), so that they share one fdatasync
// instead of splitting into two groups that take turns. Holding costs the disk the cohort's
// return time R (from the replies' send until the cohort's writes arrived: the clients' own
// work, the loop's parse) per round, idle; not holding costs the clients a split. With S the
// fdatasync's time:
//   - S > R (a slow or contended disk): not held, the next round starts with the few writes
//     that arrived, and the cohort, back R later, waits for that whole fdatasync: a cycle of
//     up to 2 S, against S + R held. Holding wins, and fewer, bigger fdatasyncs cost less of
//     a contended disk.
//   - S <= R (a fast disk, many clients or a slow client side): not held, the next round
//     starts at once with the writes already back, the loop works on one group while the
//     disk syncs the other's, and S and R overlap: a cycle of about max(2 S, S + R / 2),
//     shorter than S + R. Holding only idles the disk.
// Measured (bench/README.md, issue 16 items 3 and 4): redis-benchmark's 50 clients at
// pipeline 1 come back over ~850 µs, a quiet fdatasync takes 100-300 µs; at pipeline 32, 1,600
// writes come back over a few ms. Unheld rounds ran 1.05-1.17x the ops/s of held ones at
// pipeline 32 and, with the server on one CPU, 1.1-1.4x Redis' at pipeline 1 where held rounds
// ran 0.83-0.94x; on a contended disk (2 ms fdatasyncs and more) holding won.
//
// GroupHoldMode::kAuto therefore holds while the disk is the slower side: the average
// fdatasync (an exponential average, kGroupHoldAverageShift) is longer than the average
// return of the held cohorts. Until a cohort was measured it holds (that measures one).
// R is seen only while holding, so after kGroupHoldProbeRounds rounds in a row that held
// nothing one round holds anyway and R is measured again (the clients may have become
// fewer or faster). kOn always holds (the behaviour before kAuto; a cluster's leader, where
// kAuto was not measured: the round there includes a follower's fdatasync, cluster_hold_bounds);
// kOff never holds.
#pragma once

#include <cstdint>

#include "server/options.h"

namespace hmdb::server {

class GroupHoldPolicy {
 public:
  explicit GroupHoldPolicy(GroupHoldMode mode = GroupHoldMode::kAuto) : mode_(mode) {}

  // A round that made client writes durable synced in sync_us: does it hold the next one?
  bool hold_after_sync(uint64_t sync_us) {
    sync_avg_us_ = average(sync_avg_us_, sync_us, syncs_seen_++ == 0);
    switch (mode_) {
      case GroupHoldMode::kOn: return true;
      case GroupHoldMode::kOff: return false;
      case GroupHoldMode::kAuto: break;
    }
#ifdef HMDB_PLANTED_BUG_GROUP_HOLD_ALWAYS
    const bool disk_slower = true;  // PLANTED BUG: holds whatever the times
#else
    const bool disk_slower = returns_seen_ == 0 || sync_avg_us_ > return_avg_us_;
#endif
    if (disk_slower || ++unheld_ >= kGroupHoldProbeRounds) {
      unheld_ = 0;
      return true;
    }
    return false;
  }

  // A held cohort came back return_us after its replies were sent (or the hold ended at its
  // deadline, return_us after the send: the cohort takes at least that long).
  void cohort_returned(uint64_t return_us) { return_avg_us_ = average(return_avg_us_, return_us, returns_seen_++ == 0); }

  GroupHoldMode mode() const { return mode_; }
  uint64_t sync_avg_us() const { return sync_avg_us_; }
  uint64_t return_avg_us() const { return return_avg_us_; }

 private:
  static uint64_t average(uint64_t avg, uint64_t x, bool first) {
    if (first) return x;
    // avg + (x - avg) / 2^shift, in unsigned arithmetic.
    return x >= avg ? avg + ((x - avg) >> kGroupHoldAverageShift) : avg - ((avg - x) >> kGroupHoldAverageShift);
  }

  GroupHoldMode mode_;
  uint64_t sync_avg_us_ = 0;
  uint64_t return_avg_us_ = 0;
  uint64_t syncs_seen_ = 0;
  uint64_t returns_seen_ = 0;
  uint64_t unheld_ = 0;  // rounds in a row that held nothing (kAuto)
};

}  // namespace hmdb::server
