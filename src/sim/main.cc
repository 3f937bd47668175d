// sim/main.cc — hmdb-sim: runs the deterministic simulator on one seed or many.
//
//   hmdb-sim --seed 123 [--trace]                 one run; prints the verdict (and the trace)
//   hmdb-sim --seeds N [--start S] [--nodes 3] [--steps K] [--bug NAME] [--keep-going]
//                                                 N runs; prints throughput and fault coverage
//   --max-seconds S: stop the sweep after S seconds (and print the summary so far).
//   --isolate: each run in a forked child, so that a core abort (HMDB_ASSERT) is reported as
//              that seed's failure and the sweep goes on (for long runs).
//   --upgrade: mixed versions (issue 13): nodes go from v1 to v2 of the register app through
//              an operator's plan (restarts, rollbacks, the gate); docs/simulator.md.
//   --lying-fsync: fsyncs may lie (synced records vanish at a crash): undetectable, so
//              runs may fail; shows what the checks see (off in CI).
//   --log-memory-bytes N: every core drops entries beyond N bytes of log without a snapshot
//              (raft::Config::log_memory_bytes); a follower that needs one is caught up by a
//              snapshot its leader's shell takes on demand; the summary counts them.
//   --fresh-leader-stalls: half the new leaders stall right after their election for more
//              than one election timeout; resumed, the ticks alone must not depose them
//              (check fresh-leader-kept; docs/simulator.md).
//
// A failing run prints the seed, the violated check, the exact command that replays it and
// the tail of its trace (the run is replayed with tracing on; same seed, same run).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "sim/simulator.h"

namespace {

using hmdb::sim::Options;
using hmdb::sim::RunResult;

// Trace lines printed for a failure found in a multi-seed run (--trace prints them all).
constexpr size_t kTraceTailLines = 400;

// If the core aborts (HMDB_ASSERT), the seed must still be printed: the handler writes the
// prepared replay line with write(2), which is async-signal-safe.
char g_replay_line[512];

void on_abort(int) {
  std::fflush(stdout);
  ssize_t n = write(2, g_replay_line, strlen(g_replay_line));
  (void)n;
  signal(SIGABRT, SIG_DFL);
  raise(SIGABRT);
}

void usage() {
  std::fprintf(stderr,
               "usage: hmdb-sim [--seed S | --seeds N [--start S]] [--nodes 3|5] [--steps TICKS]\n"
               "                [--ops MAX_CLIENT_OPS] [--bug NAME]... [--no-faults] [--trace] [--keep-going]\n"
               "                [--isolate] [--outcome-checks-only] [--max-seconds S] [--lying-fsync] [--transactions] [--forward]\n"
               "                [--request-ids] [--digest-marks] [--upgrade] [--sliced-reads] [--slow-readers] [--sliced-writes] [--apply-budget] [--snapshot-races] [--sliced-snapshots]\n"
               "                [--log-memory-bytes N] [--fresh-leader-stalls]\n"
               "bugs:");
  for (const auto& b : hmdb::sim::bug_names()) std::fprintf(stderr, " %s", b.c_str());
  for (const auto& b : hmdb::sim::shell_bug_names()) std::fprintf(stderr, " %s", b.c_str());
  std::fprintf(stderr, "\n");
}

void print_failure(const Options& o, const RunResult& r, bool full_trace) {
  std::printf("FAILED seed %llu: check [%s]\n  %s\n", static_cast<unsigned long long>(o.seed), r.check.c_str(),
              r.detail.c_str());
  if (r.check == "core-abort") {  // replaying in this process would abort it too
    std::printf("replay: %s\n", hmdb::sim::replay_command(o).c_str());
    return;
  }
  Options t = o;
  t.trace = true;
  t.trace_sink = nullptr;
  RunResult rt = r.trace.empty() ? hmdb::sim::run_simulation(t) : r;
  size_t from = full_trace || rt.trace.size() <= kTraceTailLines ? 0 : rt.trace.size() - kTraceTailLines;
  std::printf("--- trace (%s%zu lines) ---\n", from ? "last " : "", rt.trace.size() - from);
  for (size_t i = from; i < rt.trace.size(); i++) std::printf("%s\n", rt.trace[i].c_str());
  std::printf("--- end of trace ---\nFAILED seed %llu: check [%s]\nreplay: %s\n", static_cast<unsigned long long>(o.seed),
              r.check.c_str(), hmdb::sim::replay_command(o).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options base;
  uint64_t seeds = 0, start = 1;
  bool single = false, keep_going = false, isolate = false;
  double max_seconds = 0;  // 0: no limit
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) { usage(); std::exit(2); }
      return argv[++i];
    };
    try {
      if (a == "--seed") { base.seed = std::stoull(value()); single = true; }
      else if (a == "--seeds") seeds = std::stoull(value());
      else if (a == "--start") start = std::stoull(value());
      else if (a == "--nodes") base.nodes = static_cast<uint32_t>(std::stoul(value()));
      else if (a == "--steps") base.chaos_ticks = static_cast<uint32_t>(std::stoul(value()));
      else if (a == "--ops") base.max_client_ops = static_cast<uint32_t>(std::stoul(value()));
      else if (a == "--bug") {
        std::string name = value();
        if (!hmdb::sim::set_bug(&base, name)) { std::fprintf(stderr, "unknown bug %s\n", name.c_str()); usage(); return 2; }
      } else if (a == "--no-faults") base.faults = false;
      else if (a == "--trace") base.trace = true;
      else if (a == "--keep-going") keep_going = true;
      else if (a == "--isolate") isolate = true;
      else if (a == "--max-seconds") max_seconds = std::stod(value());
      else if (a == "--outcome-checks-only") base.protocol_checks = false;
      else if (a == "--lying-fsync") base.lying_fsync = true;
      else if (a == "--transactions") base.transactions = true;
      else if (a == "--forward") base.forward = true;
      else if (a == "--request-ids") base.request_ids = true;
      else if (a == "--digest-marks") base.digest_marks = true;
      else if (a == "--upgrade") base.upgrade = true;
      else if (a == "--sliced-reads") base.sliced_reads = true;
      else if (a == "--slow-readers") base.slow_readers = base.sliced_reads = true;
      else if (a == "--sliced-writes") base.sliced_writes = true;
      else if (a == "--apply-budget") base.apply_budget = true;
      else if (a == "--snapshot-races") base.snapshot_races = true;
      else if (a == "--sliced-snapshots") base.sliced_snapshots = true;
      else if (a == "--fresh-leader-stalls") base.fresh_leader_stalls = true;
      else if (a == "--log-memory-bytes") base.log_memory_bytes = std::stoull(value());
      else { usage(); return 2; }
    } catch (const std::exception&) {
      usage();
      return 2;
    }
  }
  if (base.nodes < 1 || base.nodes > 5) { std::fprintf(stderr, "--nodes must be 1..5\n"); return 2; }
  signal(SIGABRT, on_abort);

  if (single || seeds == 0) {
    std::snprintf(g_replay_line, sizeof g_replay_line, "\nhmdb-sim: core aborted on seed %llu; replay: %s\n",
                  static_cast<unsigned long long>(base.seed), hmdb::sim::replay_command(base).c_str());
    if (base.trace) base.trace_sink = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
    RunResult r = hmdb::sim::run_simulation(base);
    if (!r.ok) {
      if (base.trace) {
        std::printf("FAILED seed %llu: check [%s]\n  %s\nreplay: %s\n", static_cast<unsigned long long>(base.seed),
                    r.check.c_str(), r.detail.c_str(), hmdb::sim::replay_command(base).c_str());
      } else {
        print_failure(base, r, false);
      }
      return 1;
    }
    std::printf("ok seed %llu: %llu ticks, %llu client ops (%llu ok, %llu failed, %llu unknown), %llu messages, "
                "trace hash %016llx\n",
                static_cast<unsigned long long>(r.seed), static_cast<unsigned long long>(r.ticks),
                static_cast<unsigned long long>(r.client_ops), static_cast<unsigned long long>(r.client_ok),
                static_cast<unsigned long long>(r.client_failed), static_cast<unsigned long long>(r.client_unknown),
                static_cast<unsigned long long>(r.messages_sent), static_cast<unsigned long long>(r.trace_hash));
    return 0;
  }

  auto t0 = std::chrono::steady_clock::now();
  uint64_t failures = 0, ops = 0, ticks = 0, messages = 0, inconclusive = 0, ran = 0;
  uint64_t older_term_leaders = 0, first_older_term_leader = 0;
  uint64_t learner_leaders = 0, first_learner_leader = 0;
  uint64_t forwarded = 0, forward_links_broken = 0;
  uint64_t snapshots_wanted = 0, wanted_taken = 0, wanted_installs = 0;
  std::array<uint64_t, hmdb::sim::kFaultCount> faults{};
  Options o = base;
  o.trace = false;
  for (uint64_t s = start; s < start + seeds; s++) {
    if (max_seconds > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= max_seconds) {
      std::printf("stopping: --max-seconds %.0f reached\n", max_seconds);
      break;
    }
    o.seed = s;
    std::snprintf(g_replay_line, sizeof g_replay_line, "\nhmdb-sim: core aborted on seed %llu; replay: %s\n",
                  static_cast<unsigned long long>(s), hmdb::sim::replay_command(o).c_str());
    RunResult r = isolate ? hmdb::sim::run_simulation_isolated(o) : hmdb::sim::run_simulation(o);
    ran++;
    ops += r.client_ops;
    ticks += r.ticks;
    messages += r.messages_sent;
    inconclusive += r.linearizability_inconclusive;
    if (r.older_term_leader && older_term_leaders++ == 0) first_older_term_leader = s;
    if (r.learner_led && learner_leaders++ == 0) first_learner_leader = s;
    forwarded += r.forwarded;
    forward_links_broken += r.forward_links_broken;
    snapshots_wanted += r.snapshots_wanted;
    wanted_taken += r.wanted_snapshots_taken;
    wanted_installs += r.wanted_snapshot_installs;
    for (size_t f = 0; f < faults.size(); f++) faults[f] += r.faults[f];
    if (!r.ok) {
      failures++;
      print_failure(o, r, false);
      if (!keep_going) break;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nseeds %llu..%llu: %llu runs, %llu failed, %.1f s\n", static_cast<unsigned long long>(start),
              static_cast<unsigned long long>(start + ran - 1), static_cast<unsigned long long>(ran),
              static_cast<unsigned long long>(failures), secs);
  std::printf("  seeds/min          %.0f\n", ran / secs * 60);
  std::printf("  projected time for 100000 seeds: %.1f min\n", 100000.0 / (ran / secs) / 60);
  std::printf("  client ops/s       %.0f  (%llu ops)\n", ops / secs, static_cast<unsigned long long>(ops));
  std::printf("  ticks/s            %.0f\n", ticks / secs);
  std::printf("  messages/s         %.0f\n", messages / secs);
  std::printf("  linearizability searches cut off (inconclusive): %llu\n", static_cast<unsigned long long>(inconclusive));
  std::printf("  runs with a legal leader of an older term than a commit it lacks: %llu", static_cast<unsigned long long>(older_term_leaders));
  if (older_term_leaders) std::printf(" (first: seed %llu)", static_cast<unsigned long long>(first_older_term_leader));
  std::printf("\n  runs in which a learner was elected: %llu", static_cast<unsigned long long>(learner_leaders));
  if (learner_leaders) std::printf(" (first: seed %llu)", static_cast<unsigned long long>(first_learner_leader));
  std::printf("\n");
  if (base.forward)
    std::printf("  forwarded commands %llu, forwarding links broken %llu\n", static_cast<unsigned long long>(forwarded),
                static_cast<unsigned long long>(forward_links_broken));
  if (base.log_memory_bytes)
    std::printf("  fresh snapshots asked for %llu, taken %llu, installed by a follower %llu\n",
                static_cast<unsigned long long>(snapshots_wanted), static_cast<unsigned long long>(wanted_taken),
                static_cast<unsigned long long>(wanted_installs));
  std::printf("  fraction of runs that exercised each fault:\n");
  for (size_t f = 0; f < faults.size(); f++)
    std::printf("    %-22s %5.1f%%\n", hmdb::sim::fault_name(static_cast<hmdb::sim::Fault>(f)),
                100.0 * faults[f] / std::max<uint64_t>(ran, 1));
  return failures ? 1 : 0;
}
