// common/clock.h — the one way the shell and the tools read time: monotonic (durations,
// deadlines, timeouts, backoff) and wall (timestamps a person or another node reads: log
// lines, CLIENT LIST ages, the leader's stamp on a batch), each in milliseconds or
// microseconds.
//
// The consensus core (src/raft), the replica (src/core) and the apps never include this
// header: they are handed time (raft ticks, core::Replica::set_time, ApplyContext::now_ms),
// so a simulated run replays exactly (tests/common: determinism.no_clock_in_cores).
//
// clock_gettime goes through the vDSO (no system call); the event loop still reads the
// clocks once per turn, not per command. Thread-safe.
#pragma once

#include <time.h>

#include <cstdint>

namespace hmdb {

namespace clock_detail {
inline uint64_t read_ns(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace clock_detail

// Never goes backwards; unrelated to the date (starts at boot). For "how long" and "until".
inline uint64_t monotonic_ms() { return clock_detail::read_ns(CLOCK_MONOTONIC) / 1'000'000; }
inline uint64_t monotonic_us() { return clock_detail::read_ns(CLOCK_MONOTONIC) / 1'000; }
// Since the Unix epoch (UTC); may jump when the system clock is set. For "when".
inline uint64_t wall_ms() { return clock_detail::read_ns(CLOCK_REALTIME) / 1'000'000; }
inline uint64_t wall_us() { return clock_detail::read_ns(CLOCK_REALTIME) / 1'000; }

}  // namespace hmdb
