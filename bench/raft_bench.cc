// bench/raft_bench.cc — the consensus core's cost per committed entry (CPU time and heap
// allocations), for a cluster of one and a cluster of three, all in memory: the "disk"
// acknowledges at once and the "network" is a queue, so what is measured is the core
// (plus moving its Ready and messages around), not I/O.
//
// Arguments: entries proposed per round (the shell proposes one entry per event-loop turn,
// carrying every command that arrived; several per round model pipelining).
// Counters: allocs_per_entry (operator new calls per committed entry, all nodes together)
// and ns_per_entry (wall time per committed entry; the loop is single-threaded CPU work).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <memory>
#include <new>
#include <vector>

#include "raft/raft.h"

// ───────────── allocation counting (whole process; the benchmark is single-threaded) ─────────────

namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace hmdb::raft {
namespace {

// Payload of one entry: a small batch of commands, as the kv app writes them.
constexpr size_t kPayloadBytes = 64;

PersistAck ack_for(const Ready& rd, const HardState& durable) {
  PersistAck a;
  a.hard_state = durable;
  if (!rd.entries.empty()) {
    a.last_index = rd.entries.back().index;
    a.last_term = rd.entries.back().term;
  }
  return a;
}

// A node whose disk acknowledges immediately.
struct Node {
  std::unique_ptr<Raft> raft;
  HardState hs;
  Index applied = 0;
};

// Drains every Ready of every node and delivers messages until nothing moves.
void settle(std::vector<Node>& nodes, std::deque<Message>& net) {
  for (;;) {
    bool any = false;
    for (auto& n : nodes) {
      while (n.raft->has_ready()) {
        any = true;
        Ready rd = n.raft->take_ready();
        if (rd.hard_state) n.hs = *rd.hard_state;
        for (auto& m : rd.messages) net.push_back(std::move(m));
        if (!rd.committed.empty()) {
          n.applied = rd.committed.back().index;
          n.raft->applied_to(n.applied);
        }
        if (rd.hard_state || !rd.entries.empty()) n.raft->persisted(ack_for(rd, n.hs));
      }
    }
    while (!net.empty()) {
      any = true;
      Message m = std::move(net.front());
      net.pop_front();
      nodes[m.to - 1].raft->step(m);
    }
    if (!any) return;
  }
}

std::vector<Node> make_cluster(int size) {
  std::vector<Node> nodes(size);
  ConfState conf;
  for (int i = 1; i <= size; i++) conf.voters.push_back(i);
  for (int i = 0; i < size; i++) {
    Config c;
    c.id = i + 1;
    RestoreState rs;
    rs.initial_conf = conf;
    nodes[i].raft = std::make_unique<Raft>(c, std::move(rs));
  }
  std::deque<Message> net;
  if (size == 1) {
    nodes[0].raft->tick();
  } else {
    nodes[0].raft->campaign();
  }
  settle(nodes, net);
  return nodes;
}

void run(benchmark::State& state, int cluster_size) {
  const int per_round = static_cast<int>(state.range(0));
  std::vector<Node> nodes = make_cluster(cluster_size);
  Raft& leader = *nodes[0].raft;
  if (leader.role() != Role::kLeader) {
    state.SkipWithError("no leader");
    return;
  }
  std::deque<Message> net;
  const std::string payload(kPayloadBytes, 'x');
  uint64_t entries = 0;
  uint64_t allocations_before = g_allocations.load();
  for (auto _ : state) {
    Index last = 0;
    for (int i = 0; i < per_round; i++) {
      ProposeResult r = leader.propose(EntryType::kNormal, 1, payload);
      if (r.error != ProposeError::kNone) {
        state.SkipWithError("proposal refused");
        return;
      }
      last = r.index;
    }
    settle(nodes, net);
    if (nodes[0].applied < last) {
      state.SkipWithError("entry did not commit");
      return;
    }
    entries += per_round;
  }
  uint64_t allocations = g_allocations.load() - allocations_before;
  state.SetItemsProcessed(static_cast<int64_t>(entries));
  state.counters["allocs_per_entry"] =
      benchmark::Counter(static_cast<double>(allocations) / static_cast<double>(entries));
  state.counters["ns_per_entry"] = benchmark::Counter(
      static_cast<double>(entries), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_CommitOneNode(benchmark::State& state) { run(state, 1); }
void BM_CommitThreeNodes(benchmark::State& state) { run(state, 3); }

BENCHMARK(BM_CommitOneNode)->Arg(1)->Arg(16);
BENCHMARK(BM_CommitThreeNodes)->Arg(1)->Arg(16);

}  // namespace
}  // namespace hmdb::raft

BENCHMARK_MAIN();
