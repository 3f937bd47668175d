// bench/kv_bench.cc — micro-benchmarks of the kv app alone (no network, no log): how fast
// AppHost applies SET/INCR/LPUSH/HSET/SADD and answers GET, and how fast a snapshot of many
// string keys loads (the app's share of "restart with 10 million keys in at most 3 s").
//
//   build-*/bench/kv_bench --benchmark_filter=Load   # 1M and 10M keys (~1.5 GiB RAM)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "hmdb/app.h"
#include "kv/kv.h"
#include "kv/prefault.h"
#include "kv/save_producer.h"
#include "kv/value_alloc.h"

namespace {

using Host = hmdb::AppHost<hmdb::kv::Kv>;

// Keys shaped like redis-benchmark's ("key:" + 12 digits): 16 bytes, just past
// std::string's small buffer but inline in kv::Key, as in real use.
std::string key_name(uint64_t i) {
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "key:%012llu", static_cast<unsigned long long>(i));
  return std::string(buf, static_cast<size_t>(n));
}

// A snapshot of n string keys with 3-byte values, built directly with the kv format
// (varint count; per key: bytes key, u8 type 0, bytes value).
std::string string_snapshot(uint64_t n) {
  hmdb::Encoder enc;
  enc.varint(n);
  for (uint64_t i = 0; i < n; i++) {
    enc.bytes(key_name(i));
    enc.u8(0);
    enc.bytes("xxx");
  }
  return enc.take();
}

void BM_LoadStringSnapshot(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  const std::string bytes = string_snapshot(n);
  for (auto _ : state) {
    state.PauseTiming();
    auto host = std::make_unique<Host>();
    state.ResumeTiming();
    hmdb::Decoder dec(bytes);
    if (!host->load(dec, hmdb::kv::Kv::kSchemaVersion)) state.SkipWithError("load failed");
    benchmark::DoNotOptimize(host.get());
    state.PauseTiming();
    host.reset();  // freeing 10M strings is not part of a restart
    state.ResumeTiming();
  }
  state.counters["keys_per_s"] = benchmark::Counter(static_cast<double>(n) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["snapshot_MiB"] = static_cast<double>(bytes.size()) / (1 << 20);
}
BENCHMARK(BM_LoadStringSnapshot)->Arg(1'000'000)->Arg(10'000'000)->Unit(benchmark::kMillisecond)->Iterations(2);

void BM_SaveStringSnapshot(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  Host host;
  {
    const std::string bytes = string_snapshot(n);  // the Decoder only views it
    hmdb::Decoder dec(bytes);
    if (!host.load(dec, hmdb::kv::Kv::kSchemaVersion)) state.SkipWithError("load failed");
  }
  for (auto _ : state) {
    hmdb::Encoder enc;
    host.save(enc);
    benchmark::DoNotOptimize(enc.size());
  }
  state.counters["keys_per_s"] = benchmark::Counter(static_cast<double>(n) * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SaveStringSnapshot)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

// One write through AppHost::validate + apply, as the server does for each command:
// `command key` [field] [value], the key (and field) drawn at random like hmdb-bench does.
void run_writes(benchmark::State& state, const char* command, bool with_value, bool with_field = false) {
  const uint64_t keyspace = static_cast<uint64_t>(state.range(0));
  Host host;
  std::vector<std::string> keys;
  keys.reserve(keyspace);
  for (uint64_t i = 0; i < keyspace; i++) keys.push_back(key_name(i));
  std::mt19937_64 rng(42);
  std::string out;
  hmdb::ApplyContext ctx;
  ctx.now_ms = 1'700'000'000'000;
  std::string error;
  std::vector<std::string> fields;
  if (with_field) {
    fields.reserve(keyspace);
    for (uint64_t i = 0; i < keyspace; i++) fields.push_back("element:" + key_name(i).substr(4));
  }
  for (auto _ : state) {
    std::string_view argv[4] = {command, keys[rng() % keyspace]};
    size_t argc = 2;
    if (with_field) argv[argc++] = fields[rng() % keyspace];
    if (with_value) argv[argc++] = "xxx";
    hmdb::Args args(argv, argc);
    out.clear();
    hmdb::Reply reply(&out);
    if (!host.validate(args, &error)) state.SkipWithError(error.c_str());
    ctx.index++;
    if (!host.apply(args, ctx, reply, &error)) state.SkipWithError(error.c_str());
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_ApplySet(benchmark::State& state) { run_writes(state, "SET", true); }
void BM_ApplyIncr(benchmark::State& state) { run_writes(state, "INCR", false); }
BENCHMARK(BM_ApplySet)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_ApplyIncr)->Arg(100'000);

// The container writes of issue 2's benchmark: random keys, so most lists and hashes hold
// a few elements (the iteration count decides how many; compare runs of equal length).
void BM_ApplyLpush(benchmark::State& state) { run_writes(state, "LPUSH", true); }
void BM_ApplyHset(benchmark::State& state) { run_writes(state, "HSET", true, true); }
void BM_ApplySadd(benchmark::State& state) { run_writes(state, "SADD", false, true); }
// As the server applies a batch: each command is hinted (AppHost::prefetch) kAhead
// commands before it is applied, like the apply loop in server/node.cc.
void run_prefetched_writes(benchmark::State& state, const char* command, bool with_field) {
  constexpr size_t kAhead = 8;  // server/node.h kPrefetchAheadCommands
  const uint64_t keyspace = static_cast<uint64_t>(state.range(0));
  Host host;
  std::mt19937_64 rng(42);
  // The words of every command, laid out back to back like a batch in a log entry.
  const size_t n = static_cast<size_t>(state.max_iterations) + kAhead;
  std::vector<std::string> words;
  words.reserve(n * 4);
  for (size_t i = 0; i < n; i++) {
    words.push_back(command);
    words.push_back(key_name(rng() % keyspace));
    if (with_field) words.push_back("element:" + key_name(rng() % keyspace).substr(4));
    words.push_back("xxx");
  }
  const size_t argc = with_field ? 4 : 3;
  std::vector<std::string_view> views(words.begin(), words.end());
  std::string out;
  hmdb::ApplyContext ctx;
  ctx.now_ms = 1'700'000'000'000;
  std::string why;
  for (size_t i = 0; i < kAhead; i++) host.prefetch(hmdb::Args(&views[i * argc], argc));
  size_t i = 0;
  for (auto _ : state) {
    host.prefetch(hmdb::Args(&views[(i + kAhead) * argc], argc));
    out.clear();
    hmdb::Reply reply(&out);
    ctx.index++;
    if (!host.apply(hmdb::Args(&views[i * argc], argc), ctx, reply, &why)) state.SkipWithError(why.c_str());
    i++;
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_ApplyLpushPrefetched(benchmark::State& state) { run_prefetched_writes(state, "LPUSH", false); }
void BM_ApplyHsetPrefetched(benchmark::State& state) { run_prefetched_writes(state, "HSET", true); }
BENCHMARK(BM_ApplyLpushPrefetched)->Arg(1'000'000)->Iterations(3'000'000);
BENCHMARK(BM_ApplyHsetPrefetched)->Arg(1'000'000)->Iterations(3'000'000);

BENCHMARK(BM_ApplyLpush)->Arg(1'000'000)->Iterations(3'000'000);
BENCHMARK(BM_ApplyHset)->Arg(1'000'000)->Iterations(3'000'000);
BENCHMARK(BM_ApplySadd)->Arg(1'000'000)->Iterations(3'000'000);

void BM_QueryGet(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  Host host;
  {
    const std::string bytes = string_snapshot(n);  // the Decoder only views it
    hmdb::Decoder dec(bytes);
    if (!host.load(dec, hmdb::kv::Kv::kSchemaVersion)) state.SkipWithError("load failed");
  }
  std::vector<std::string> keys;
  for (uint64_t i = 0; i < n; i++) keys.push_back(key_name(i));
  std::mt19937_64 rng(7);
  std::string out;
  hmdb::QueryContext ctx;
  for (auto _ : state) {
    std::string_view argv[2] = {"GET", keys[rng() % n]};
    out.clear();
    hmdb::Reply reply(&out);
    host.query(hmdb::Args(argv, 2), ctx, reply);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueryGet)->Arg(100'000)->Arg(1'000'000);

// Freeing string values of 400 bytes, kFreedBlocks blocks' worth at a time (what DEL of many
// keys does on the event loop): with Arg 1 the empty blocks go to the prefault thread
// (value_alloc.h, prefault::give_back); with Arg 0 prefaulting is off, so the freeing thread
// unmaps each empty block itself (as before give_back). The difference over kFreedBlocks is
// what the munmap of a populated 2 MiB block costs the thread that frees.
//   build-*/bench/kv_bench --benchmark_filter=FreeValues
constexpr size_t kFreedBlocks = 32;
void BM_FreeValues(benchmark::State& state) {
  namespace kv = hmdb::kv;
  const bool handed_back = state.range(0) != 0;
  kv::prefault::set_enabled(handed_back);
  const std::string text(400, 'v');
  const size_t n = kFreedBlocks * (kv::kValueBlockBytes / kv::value_alloc::slot_bytes(text.size() + 1));
  std::vector<kv::String> values(n);
  for (auto _ : state) {
    state.PauseTiming();
    for (kv::String& v : values) v.assign(text);
    if (handed_back) kv::prefault::wait_idle();  // the thread's work of the last round done
    const uint64_t given0 = kv::value_alloc::stats().blocks_given_back;
    state.ResumeTiming();
    for (kv::String& v : values) kv::String().swap(v);  // frees the value
    state.PauseTiming();
    state.counters["blocks_freed"] =
        benchmark::Counter(static_cast<double>(kv::value_alloc::stats().blocks_given_back - given0));
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  kv::prefault::set_enabled(true);
}
BENCHMARK(BM_FreeValues)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(20);

// ---- the snapshot written by the loop in slices (apps/kv/save_producer.h) ----------------
//   build-*/bench/kv_bench --benchmark_filter='Slice|FirstWrite'

// Applies one write through the host (validate, then apply at the next index).
void apply_words(Host& host, hmdb::ApplyContext& ctx, std::initializer_list<std::string_view> words) {
  std::vector<std::string_view> w(words);
  std::string out, error;
  hmdb::Reply reply(&out);
  hmdb::Args args(w.data(), w.size());
  ctx.index++;
  if (!host.validate(args, &error) || !host.apply(args, ctx, reply, &error)) std::abort();
}

// n string keys of `value_bytes` each, loaded from a snapshot.
void load_strings(Host& host, uint64_t n, size_t value_bytes) {
  hmdb::Encoder enc;
  enc.varint(n);
  const std::string value(value_bytes, 'v');
  for (uint64_t i = 0; i < n; i++) {
    enc.bytes(key_name(i));
    enc.u8(0);
    enc.bytes(value);
  }
  const std::string bytes = enc.take();
  hmdb::Decoder dec(bytes);
  if (!host.load(dec, hmdb::kv::Kv::kSchemaVersion)) std::abort();
}

// The producer's encode rate with no writes between slices, slices of at most kSliceBytes
// handed on (the buffer reused, as the engine's writer takes each), and save()'s whole into
// one string in the same run: Arg(0) keys, Arg(1) value bytes; Arg(2) 1 = sliced, 0 = save().
constexpr size_t kSliceBytes = 256 << 10;  // 4x the engine's kSnapshotSliceBytes (src/server/options.h, 64 KiB)
void BM_SliceSave(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  Host host;
  load_strings(host, n, static_cast<size_t>(state.range(1)));
  size_t bytes = 0;
  for (auto _ : state) {
    std::string out;
    hmdb::Encoder enc(&out);
    if (state.range(2)) {
      auto p = host.begin_save();
      bytes = 0;
      out.reserve(kSliceBytes + (64 << 10));
      for (bool done = false; !done;) {
        out.clear();
        done = p->next(enc, hmdb::SliceBudget{SIZE_MAX, kSliceBytes});
        bytes += out.size();
        benchmark::DoNotOptimize(out.data());
      }
    } else {
      host.save(enc);
      bytes = out.size();
      benchmark::DoNotOptimize(out.data());
    }
  }
  state.counters["keys_per_s"] = benchmark::Counter(static_cast<double>(n) * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["MB_per_s"] = benchmark::Counter(static_cast<double>(bytes) * state.iterations() / 1e6, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SliceSave)->Args({1'000'000, 3, 0})->Args({1'000'000, 3, 1})->Args({1'000'000, 400, 0})->Args({1'000'000, 400, 1})
    ->Unit(benchmark::kMillisecond);

// A SET of a key the snapshot has not written yet, each one the key's first write since the
// snapshot began (the producer encodes its value into the side map first), against the same
// SETs with no snapshot running: Arg(0) keys, Arg(1) 1 = a snapshot runs (cursor at the start).
void BM_FirstWriteAhead(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  Host host;
  load_strings(host, n, 3);
  std::vector<std::string> keys;
  keys.reserve(n);
  for (uint64_t i = 0; i < n; i++) keys.push_back(key_name(i));
  std::mt19937_64 rng(42);
  std::shuffle(keys.begin(), keys.end(), rng);
  std::unique_ptr<hmdb::SaveProducer> p;
  if (state.range(1)) p = host.begin_save();
  hmdb::ApplyContext ctx;
  ctx.now_ms = 1'700'000'000'000;
  size_t i = 0;
  for (auto _ : state) apply_words(host, ctx, {"SET", keys[i++ % n], "new"});
  state.SetItemsProcessed(state.iterations());
  if (p) state.counters["side_bytes"] = static_cast<double>(static_cast<hmdb::kv::SaveCursor*>(p.get())->side_bytes());
}
BENCHMARK(BM_FirstWriteAhead)->Args({1'000'000, 0})->Args({1'000'000, 1})->Iterations(500'000);

// One big container "big" of n members: 0 = a hash (HSET), 1 = a sorted set (ZADD), 2 = a set
// (SADD), 3 = a list (RPUSH).
void make_big(Host& host, hmdb::ApplyContext& ctx, int64_t n, int64_t type) {
  constexpr int64_t kPerCommand = 1000;
  std::vector<std::string> words;
  static constexpr const char* kAdd[] = {"HSET", "ZADD", "SADD", "RPUSH"};
  for (int64_t i = 0; i < n; i += kPerCommand) {
    words.assign({kAdd[type], "big"});
    for (int64_t j = i; j < std::min(n, i + kPerCommand); j++) {
      if (type == 1) words.push_back(std::to_string(j));
      words.push_back("member:" + std::to_string(j));
      if (type == 0) words.push_back("value:" + std::to_string(j));
    }
    std::vector<std::string_view> w(words.begin(), words.end());
    std::string out, error;
    hmdb::Reply reply(&out);
    ctx.index++;
    if (!host.apply(hmdb::Args(w.data(), w.size()), ctx, reply, &error)) std::abort();
  }
}

// The first write to a big container ahead of the cursor: a hash's, set's or sorted set's keeps
// only the element (for a sorted set the places) it changes (save_producer.h, ContainerSave;
// zset_save.h), a list's RPOP the element it pops (list_save.h). Arg(0) members; Arg(1) 0 = a
// hash (HSET), 1 = a sorted set (ZADD), 2 = a set (SADD), 3 = a list (RPOP); Arg(2) 1 = a
// snapshot runs, 2 = one runs with every container kept and written whole (as lists were
// before list_save.h: SaveCursor::set_whole_elements_max). One write per iteration, a fresh
// snapshot each.
void BM_BigFirstWrite(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int64_t type = state.range(1);
  Host host;
  hmdb::ApplyContext ctx;
  ctx.now_ms = 1'700'000'000'000;
  make_big(host, ctx, n, type);
  size_t side = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<hmdb::SaveProducer> p;
    if (state.range(2)) p = host.begin_save();
    if (state.range(2) == 2) static_cast<hmdb::kv::SaveCursor*>(p.get())->set_whole_elements_max(SIZE_MAX);
    state.ResumeTiming();
    if (type == 1) apply_words(host, ctx, {"ZADD", "big", "1", "member:0"});
    else if (type == 2) apply_words(host, ctx, {"SREM", "big", "member:0"});
    else if (type == 3) apply_words(host, ctx, {"RPOP", "big"});
    else apply_words(host, ctx, {"HSET", "big", "member:0", "value:0"});
    state.PauseTiming();
    if (p) side = static_cast<hmdb::kv::SaveCursor*>(p.get())->side_bytes();
    p.reset();
    state.ResumeTiming();
  }
  state.counters["side_MB"] = static_cast<double>(side) / 1e6;
}
BENCHMARK(BM_BigFirstWrite)->Args({1'000'000, 0, 0})->Args({1'000'000, 0, 1})->Args({1'000'000, 1, 0})->Args({1'000'000, 1, 1})
    ->Args({1'000'000, 2, 0})->Args({1'000'000, 2, 1})->Args({1'000'000, 3, 0})->Args({1'000'000, 3, 1})
    ->Args({1'000'000, 3, 2})->Unit(benchmark::kMillisecond)->Iterations(5);

// The cursor crossing a big container: a snapshot of the one key written with the engine's
// byte budget a call (kEngineSliceBytes), with a write to the container between calls (an element
// ahead of the inner cursor, so kept). Reports the longest next() call (wall time on this
// thread, and its CPU time, which load does not inflate: timing is this benchmark's point) and
// the calls. Arg(0) members; Arg(1) 0 = a hash, 1 = a sorted set, 2 = a set, 3 = a list (an
// LPUSH and an RPOP between calls); Arg(2) 1 = every container written whole (as lists were
// before list_save.h).
double thread_cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}
// The longest of the timed calls, in wall time and in the thread's CPU time.
struct Longest {
  double ms = 0, cpu_ms = 0;
  template <class F>
  void time(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_ms();
    f();
    cpu_ms = std::max(cpu_ms, thread_cpu_ms() - c0);
    ms = std::max(ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
};
constexpr size_t kEngineSliceBytes = 64 << 10;  // src/server/options.h's kSnapshotSliceBytes now
void BM_BigSliceCrossing(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int64_t type = state.range(1);
  Host host;
  hmdb::ApplyContext ctx;
  ctx.now_ms = 1'700'000'000'000;
  make_big(host, ctx, n, type);
  Longest longest;
  size_t calls = 0;
  int64_t w = 0;
  for (auto _ : state) {
    auto p = host.begin_save();
    if (state.range(2) == 1) static_cast<hmdb::kv::SaveCursor*>(p.get())->set_whole_elements_max(SIZE_MAX);
    std::string out;
    hmdb::Encoder enc(&out);
    out.reserve(kEngineSliceBytes + (64 << 10));
    calls = 0;
    for (bool done = false; !done;) {
      out.clear();
      longest.time([&] { done = p->next(enc, hmdb::SliceBudget{SIZE_MAX, kEngineSliceBytes}); });
      calls++;
      benchmark::DoNotOptimize(out.data());
      const std::string m = "member:" + std::to_string((w++ * 7919) % n);
      if (type == 1) apply_words(host, ctx, {"ZADD", "big", "2", m});
      else if (type == 2) apply_words(host, ctx, {"SADD", "big", m});
      else if (type == 3) apply_words(host, ctx, {"LPUSH", "big", m}), apply_words(host, ctx, {"RPOP", "big"});
      else apply_words(host, ctx, {"HSET", "big", m, "changed"});
    }
  }
  state.counters["longest_call_ms"] = longest.ms;
  state.counters["longest_call_cpu_ms"] = longest.cpu_ms;
  state.counters["calls"] = static_cast<double>(calls);
}
BENCHMARK(BM_BigSliceCrossing)->Args({1'000'000, 0, 0})->Args({1'000'000, 2, 0})->Args({1'000'000, 1, 0})
    ->Args({1'000'000, 3, 0})->Args({1'000'000, 3, 1})
    ->Unit(benchmark::kMillisecond)->Iterations(3);

// RENAME of a big container ahead of the cursor (a snapshot begun, nothing written yet): the
// loop turn that applies it, wall and the thread's CPU (which load does not inflate), against
// the same RENAME with no snapshot running. Each iteration renames "big" to "moved" under a
// fresh snapshot, then back without one (not timed). Arg(0) members; Arg(1) 0 = a hash,
// 1 = a sorted set, 2 = a set; Arg(2) 1 = a snapshot runs.
void BM_BigRename(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int64_t type = state.range(1);
  Host host;
  hmdb::ApplyContext ctx;
  ctx.now_ms = 1'700'000'000'000;
  make_big(host, ctx, n, type);
  Longest longest;
  size_t side = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<hmdb::SaveProducer> p;
    if (state.range(2)) p = host.begin_save();
    state.ResumeTiming();
    longest.time([&] { apply_words(host, ctx, {"RENAME", "big", "moved"}); });
    state.PauseTiming();
    if (p) side = static_cast<hmdb::kv::SaveCursor*>(p.get())->side_bytes();
    p.reset();
    apply_words(host, ctx, {"RENAME", "moved", "big"});
    state.ResumeTiming();
  }
  state.counters["longest_ms"] = longest.ms;
  state.counters["longest_cpu_ms"] = longest.cpu_ms;
  state.counters["side_MB"] = static_cast<double>(side) / 1e6;
}
BENCHMARK(BM_BigRename)->Args({1'000'000, 0, 0})->Args({1'000'000, 0, 1})->Args({1'000'000, 1, 0})->Args({1'000'000, 1, 1})
    ->Args({1'000'000, 2, 0})->Args({1'000'000, 2, 1})->Unit(benchmark::kMillisecond)->Iterations(5);

// LINSERT or LREM in the middle of a big list ahead of the cursor (a snapshot begun, one
// slice written): the loop turn that applies it, the thread's CPU (which load does not
// inflate) and wall, against the same command with no snapshot running. Before list_save.h's
// segments such a command encoded the rest of the list at once; now it splits the unwritten
// run (list_save.h). Each iteration runs the command under a fresh snapshot, then undoes it
// without one (not timed). Arg(0) elements (RPUSH member:0..); Arg(1) 0 = LINSERT BEFORE
// the middle element, 1 = LREM 1 of the middle one, 2 = LREM -1 of one near the tail, 3 =
// LREM 0 of the middle one; Arg(2) 1 = a snapshot runs.
void BM_BigListEdit(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int64_t kind = state.range(1);
  Host host;
  hmdb::ApplyContext ctx;
  ctx.now_ms = 1'700'000'000'000;
  make_big(host, ctx, n, 3);
  const std::string mid = "member:" + std::to_string(n / 2), mid_next = "member:" + std::to_string(n / 2 + 1);
  const std::string tail = "member:" + std::to_string(n - 10), tail_next = "member:" + std::to_string(n - 9);
  Longest longest;
  size_t side = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<hmdb::SaveProducer> p;
    if (state.range(2)) {
      p = host.begin_save();
      std::string out;
      hmdb::Encoder enc(&out);
      p->next(enc, hmdb::SliceBudget{SIZE_MAX, kEngineSliceBytes});  // the cursor inside the list
    }
    state.ResumeTiming();
    longest.time([&] {
      if (kind == 0) apply_words(host, ctx, {"LINSERT", "big", "BEFORE", mid, "new"});
      else if (kind == 1) apply_words(host, ctx, {"LREM", "big", "1", mid});
      else if (kind == 2) apply_words(host, ctx, {"LREM", "big", "-1", tail});
      else apply_words(host, ctx, {"LREM", "big", "0", mid});
    });
    state.PauseTiming();
    if (p) side = static_cast<hmdb::kv::SaveCursor*>(p.get())->side_bytes();
    p.reset();
    if (kind == 0) apply_words(host, ctx, {"LREM", "big", "1", "new"});
    else if (kind == 2) apply_words(host, ctx, {"LINSERT", "big", "BEFORE", tail_next, tail});
    else apply_words(host, ctx, {"LINSERT", "big", "BEFORE", mid_next, mid});
    state.ResumeTiming();
  }
  state.counters["longest_ms"] = longest.ms;
  state.counters["longest_cpu_ms"] = longest.cpu_ms;
  state.counters["side_MB"] = static_cast<double>(side) / 1e6;
}
BENCHMARK(BM_BigListEdit)->Args({1'000'000, 0, 0})->Args({1'000'000, 0, 1})->Args({1'000'000, 1, 0})->Args({1'000'000, 1, 1})
    ->Args({1'000'000, 2, 0})->Args({1'000'000, 2, 1})->Args({1'000'000, 3, 0})->Args({1'000'000, 3, 1})
    ->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
