// sim/lincheck_main.cc — hmdb-lincheck: checks a recorded client history (of real processes,
// e.g. the chaos test's) for linearizability with the simulator's checker.
//
//   hmdb-lincheck [--full] [FILE]      FILE (default: standard input), format in sim/history_io.h
//
// Prints one verdict line and exits with:
//   0  OK            every key's history is linearizable
//   1  VIOLATION     some key's history is not: its name and its ops are printed
//   2  INCONCLUSIVE  no violation found, but the search gave up on some key (too many states)
//   3  bad input or usage (the line and the problem are printed)
// The explanation lists the key's ops in invocation order; it is cut at kMaxExplanationLines
// unless --full is given (a long run's key may have tens of thousands of ops).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sim/history_io.h"
#include "sim/linearizability.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitViolation = 1;
constexpr int kExitInconclusive = 2;
constexpr int kExitUsage = 3;
// Lines of a violation's explanation printed without --full.
constexpr size_t kMaxExplanationLines = 120;

void usage() {
  std::fprintf(stderr,
               "usage: hmdb-lincheck [--full] [FILE]\n"
               "  checks a history of SET/INCR/GET ops (one per line, JSON or plain; see sim/history_io.h)\n"
               "  exit 0 linearizable, 1 not linearizable, 2 inconclusive, 3 bad input\n");
}

std::string cut_lines(const std::string& text, size_t max_lines) {
  size_t pos = 0;
  for (size_t line = 0; line < max_lines; line++) {
    pos = text.find('\n', pos);
    if (pos == std::string::npos) return text;
    pos++;
  }
  if (pos >= text.size()) return text;
  size_t rest = 0;
  for (size_t i = pos; i < text.size(); i++) rest += text[i] == '\n';
  return text.substr(0, pos) + fmt::format("  ... {} more lines (--full prints them)\n", rest);
}

}  // namespace

int main(int argc, char** argv) {
  bool full = false;
  const char* path = nullptr;
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--full") == 0) {
      full = true;
    } else if (std::strcmp(argv[i], "-h") == 0 || std::strcmp(argv[i], "--help") == 0) {
      usage();
      return kExitOk;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      usage();
      return kExitUsage;
    } else if (path == nullptr) {
      path = argv[i];
    } else {
      usage();
      return kExitUsage;
    }
  }

  std::vector<hmdb::sim::HistoryOp> history;
  hmdb::Status st;
  if (path == nullptr || std::strcmp(path, "-") == 0) {
    st = hmdb::sim::read_history(std::cin, &history);
  } else {
    std::ifstream in(path);
    if (!in) {
      std::fprintf(stderr, "hmdb-lincheck: cannot open %s: %s\n", path, std::strerror(errno));
      return kExitUsage;
    }
    st = hmdb::sim::read_history(in, &history);
  }
  if (st) st = hmdb::sim::normalize_times(&history);
  if (!st) {
    std::fprintf(stderr, "hmdb-lincheck: %s\n", st.to_string().c_str());
    return kExitUsage;
  }

  std::set<std::string> keys;
  size_t unknown = 0, failed = 0;
  for (const auto& op : history) {
    keys.insert(op.key);
    unknown += op.outcome == hmdb::sim::OpOutcome::kUnknown;
    failed += op.outcome == hmdb::sim::OpOutcome::kFailed;
  }
  std::string summary = fmt::format("{} ops on {} keys ({} unknown, {} failed)", history.size(), keys.size(),
                                    unknown, failed);

  hmdb::sim::LinearizabilityResult r = hmdb::sim::check_linearizable(history);
  if (!r.ok) {
    std::printf("VIOLATION: key %s is not linearizable; %s\n%s", r.key.c_str(), summary.c_str(),
                (full ? r.explanation : cut_lines(r.explanation, kMaxExplanationLines)).c_str());
    return kExitViolation;
  }
  if (r.inconclusive) {
    std::printf("INCONCLUSIVE: no violation found, but the search gave up on some key after %llu states; %s\n",
                static_cast<unsigned long long>(hmdb::sim::kMaxSearchStates), summary.c_str());
    return kExitInconclusive;
  }
  std::printf("OK: linearizable; %s\n", summary.c_str());
  return kExitOk;
}
