// bench/kv_bench.cc — micro-benchmarks of the kv app alone (no network, no log): how fast
// AppHost applies SET/INCR/LPUSH/HSET/SADD and answers GET, and how fast a snapshot of many
// string keys loads (the app's share of "restart with 10 million keys in at most 3 s").
//
//   build-*/bench/kv_bench --benchmark_filter=Load   # 1M and 10M keys (~1.5 GiB RAM)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "hmdb/app.h"
#include "kv/kv.h"
#include "kv/prefault.h"
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

}  // namespace

BENCHMARK_MAIN();
