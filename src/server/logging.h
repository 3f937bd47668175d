// server/logging.h — the server's log lines: stderr, one line each, UTC timestamp first.
//
// stderr is unbuffered, so a line is out before a fatal _exit() that follows it. Lines are
// short and rare (startup, recovery progress, snapshots, errors), never per request.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <ctime>
#include <string>
#include <sys/time.h>
#include <unistd.h>

namespace hmdb::server {

inline std::string log_timestamp() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm t{};
  gmtime_r(&tv.tv_sec, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                     t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(tv.tv_usec / 1000));
}

template <class... Args>
void log_line(fmt::format_string<Args...> format, Args&&... args) {
  std::string line = log_timestamp() + " hmdb[" + std::to_string(::getpid()) + "]: " +
                     fmt::format(format, std::forward<Args>(args)...) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace hmdb::server
