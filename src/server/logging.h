// server/logging.h — the server's log lines: stderr, one line each, UTC timestamp first.
//
// stderr is unbuffered, so a line is out before a fatal _exit() that follows it. Lines are
// short and rare (startup, recovery progress, snapshots, errors), never per request.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <ctime>
#include <string>
#include <unistd.h>

#include "common/clock.h"

namespace hmdb::server {

inline std::string log_timestamp() {
  const uint64_t now_ms = wall_ms();
  const time_t seconds = static_cast<time_t>(now_ms / 1000);
  tm t{};
  gmtime_r(&seconds, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                     t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(now_ms % 1000));
}

template <class... Args>
void log_line(fmt::format_string<Args...> format, Args&&... args) {
  std::string line = log_timestamp() + " hmdb[" + std::to_string(::getpid()) + "]: " +
                     fmt::format(format, std::forward<Args>(args)...) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace hmdb::server
