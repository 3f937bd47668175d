// tests/server/fatal_test.cc — fatal(): one "FATAL:" log line in the server's format, then the
// named exit code at once (no atexit handler, no destructor runs: nothing is flushed after it).
#include "server/fatal.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace hmdb::server {
namespace {

// Ends the process with this code if an atexit handler runs, i.e. if fatal() exited through
// exit() rather than _exit().
constexpr int kAtexitRanCode = 99;

[[noreturn]] void fatal_after_atexit(ExitCode code) {
  std::atexit([] { std::_Exit(kAtexitRanCode); });
  fatal(code, "writing {} failed: {}", "the log", "Input/output error");
}

TEST(FatalDeathTest, LogsOneLineAndExitsWithTheNamedCode) {
  // The line: UTC timestamp, "hmdb[pid]: ", "FATAL: ", the message, newline.
  const char* kLine =
      "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z hmdb\\[[0-9]+\\]: FATAL: writing the log "
      "failed: Input/output error\n$";
  EXPECT_EXIT(fatal_after_atexit(kExitDiskFailure), ::testing::ExitedWithCode(3), kLine);
  EXPECT_EXIT(fatal_after_atexit(kExitCorruption), ::testing::ExitedWithCode(2), kLine);
  EXPECT_EXIT(fatal_after_atexit(kExitStartupFailure), ::testing::ExitedWithCode(1), kLine);
}

TEST(FatalDeathTest, MessageIsNotAFormatString) {
  EXPECT_EXIT(fatal_message(kExitCorruption, "50% {} of {}"), ::testing::ExitedWithCode(2), "FATAL: 50% \\{\\} of \\{\\}\n$");
}

// The documented table (docs/operations.md, "Exit codes"); supervisors are told these numbers.
static_assert(kExitOk == 0 && kExitStartupFailure == 1 && kExitCorruption == 2 && kExitDiskFailure == 3 &&
              kExitRemoved == 4);

}  // namespace
}  // namespace hmdb::server
