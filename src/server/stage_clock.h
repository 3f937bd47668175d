// server/stage_clock.h — the clock of the latency stages (server/latency.h, stage_timing.cc):
// microseconds on CLOCK_MONOTONIC's scale, read from the CPU's time-stamp counter (TSC)
// where the kernel itself reads time from it, for about half the price of clock_gettime.
//
// The event loop anchors it at the start of every turn to the CLOCK_MONOTONIC reading it
// makes there anyway (anchor()); a reading is then the anchor plus the TSC ticks since,
// scaled by the TSC's rate. Its error is the rate's error times the time since the turn
// began (parts per million of a turn), and it cannot drift from CLOCK_MONOTONIC over time.
// The rate is measured from the anchors themselves: the ticks between the first anchor and
// one at least kStageClockCalibrationUs later, over the CLOCK_MONOTONIC µs between them,
// refined every kStageClockRefineUs over the whole span since the first anchor. Until the
// first measurement, where the kernel's clocksource is not the TSC (a VM on kvm-clock, a
// machine whose TSC the kernel found unstable, another CPU than x86-64), and if a
// refinement finds the rate moved by more than kStageClockRateDriftMax, now_us() is
// clock_gettime(CLOCK_MONOTONIC). Readings never go backwards within a turn nor across
// anchors. docs/decisions.md, "The latency stages read the TSC".
//
// Thread-safety: none; the event loop owns it.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/clock.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace hmdb::server {

// Span of the first rate measurement: a preemption between an anchor's two reads errs the
// rate by its length over this span (1 ms: 1 %, i.e. 1 µs on a 100 µs turn).
inline constexpr uint64_t kStageClockCalibrationUs = 100'000;
// The rate is measured again over the whole span since the first anchor this often.
inline constexpr uint64_t kStageClockRefineUs = 1'000'000;
// A refined rate this far (relative) from the previous one means the TSC is not what the
// kernel said it was (or the machine changed under us): back to clock_gettime for good.
inline constexpr double kStageClockRateDriftMax = 0.01;

class StageClock {
 public:
  // Reads the TSC if the kernel's current clocksource is "tsc" (on x86-64).
  StageClock();
  // For tests: TSC or not, whatever the kernel uses.
  explicit StageClock(bool use_tsc);

  // At the start of a loop turn, with CLOCK_MONOTONIC read just now (µs). Returns the
  // turn's start on this clock: mono_us, or the last reading if that was later.
  uint64_t anchor(uint64_t mono_us) {
    if (!use_tsc_) return last_anchor_us_ = std::max(mono_us, last_anchor_us_);
    const uint64_t tsc = read_tsc();
    // Never behind the previous turn's readings.
    const uint64_t us = mult_ != 0 ? std::max(mono_us, at(tsc)) : mono_us;
    if (first_tsc_ == 0 || mono_us - calibrated_us_ >= (mult_ == 0 ? kStageClockCalibrationUs : kStageClockRefineUs))
      calibrate(tsc, mono_us);
    anchor_tsc_ = tsc;
    anchor_us_ = us;
    last_anchor_us_ = us;
    return us;
  }

  // Now, in µs on CLOCK_MONOTONIC's scale.
  uint64_t now_us() const {
    if (mult_ == 0) return std::max(monotonic_us(), last_anchor_us_);
    return at(read_tsc());
  }

  bool reads_tsc() const { return mult_ != 0; }
  // TSC ticks per µs as measured (0 before the first measurement or without the TSC).
  double ticks_per_us() const { return mult_ == 0 ? 0 : 4294967296.0 / static_cast<double>(mult_); }

  // The µs `ticks` TSC ticks are at `mult` (2^32 / ticks per µs). Pure, for tests.
  static uint64_t scale(uint64_t ticks, uint64_t mult) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(ticks) * mult) >> 32);
  }

 private:
  static uint64_t read_tsc() {
#if defined(__x86_64__)
    return __rdtsc();
#else
    return 0;
#endif
  }
  uint64_t at(uint64_t tsc) const {
    // A TSC behind the anchor (another CPU's, slightly out of step): the anchor.
    return anchor_us_ + (tsc > anchor_tsc_ ? scale(tsc - anchor_tsc_, mult_) : 0);
  }
  void calibrate(uint64_t tsc, uint64_t mono_us);

  bool use_tsc_ = false;
  uint64_t mult_ = 0;  // 2^32 / (TSC ticks per µs); 0: clock_gettime
  uint64_t first_tsc_ = 0, first_us_ = 0;  // the first anchor
  uint64_t calibrated_us_ = 0;             // when the rate was last measured
  uint64_t anchor_tsc_ = 0, anchor_us_ = 0;
  uint64_t last_anchor_us_ = 0;  // the last turn's start (readings without the TSC never go below it)
};

}  // namespace hmdb::server
