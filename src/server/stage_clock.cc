// server/stage_clock.cc — whether the stage clock may read the TSC, and its rate; see
// server/stage_clock.h.
#include "server/stage_clock.h"

#include <cmath>
#include <fstream>
#include <string>

#include "server/logging.h"

namespace hmdb::server {

namespace {

// The kernel reads time from the TSC only if it found it invariant and in step across
// CPUs (constant_tsc, nonstop_tsc, no watchdog complaint); then so may we.
bool kernel_reads_tsc() {
#if defined(__x86_64__)
  std::ifstream f("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string source;
  return f && std::getline(f, source) && source == "tsc";
#else
  return false;
#endif
}

}  // namespace

StageClock::StageClock() : StageClock(kernel_reads_tsc()) {}

StageClock::StageClock(bool use_tsc) : use_tsc_(use_tsc) {}

void StageClock::calibrate(uint64_t tsc, uint64_t mono_us) {
  calibrated_us_ = mono_us;
  if (first_tsc_ == 0) {
    first_tsc_ = tsc;
    first_us_ = mono_us;
    return;
  }
  if (tsc <= first_tsc_ || mono_us <= first_us_) return;  // a TSC out of step: measure later
  const unsigned __int128 span_us = mono_us - first_us_;
  const uint64_t mult = static_cast<uint64_t>((span_us << 32) / (tsc - first_tsc_));
  if (mult == 0) return;
  if (mult_ != 0 &&
      std::fabs(static_cast<double>(mult) - static_cast<double>(mult_)) > kStageClockRateDriftMax * static_cast<double>(mult_)) {
    log_line("warning: the TSC's rate moved from {:.1f} to {:.1f} ticks/us; latency stages read clock_gettime from now on",
             ticks_per_us(), 4294967296.0 / static_cast<double>(mult));
    use_tsc_ = false;
    mult_ = 0;
    return;
  }
  mult_ = mult;
}

}  // namespace hmdb::server
