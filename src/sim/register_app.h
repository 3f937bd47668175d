// sim/register_app.h — the tiny deterministic application the simulator replicates.
//
// A map of integer registers: SET k v, INCR k (writes), GET k (query). It is a real hmdb
// application (hmdb/app.h), hosted by AppHost and fed real command batches (core/batch.h),
// so the simulator exercises the same apply path as the server, and its digest lets the
// checker compare the applied state of every node at every index. Registers are enough for
// linearizability checking: SET writes unique values, INCR's reply reveals the order of
// increments, GET observes both.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "hmdb/app.h"

namespace hmdb::sim {

struct RegisterApp {
  static constexpr std::string_view kName = "simreg";
  static constexpr uint32_t kSchemaVersion = 1;
  // Bound on keys in a snapshot we accept to load (the workload uses a handful).
  static constexpr uint64_t kMaxKeys = 1 << 20;

  struct State {
    std::map<std::string, int64_t, std::less<>> values;  // ordered: save() order is stable
  };

  static void define(Commands<State>& c);
  static void save(const State& s, Encoder& out);
  static bool load(State& s, Decoder& in, uint32_t version);
};

using RegisterHost = AppHost<RegisterApp>;

// Parses the one RESP value a RegisterApp command or query writes: "+OK" -> nullopt with
// *ok=true, ":N" or "$len\r\nN" -> N, "$-1" -> nullopt, anything else -> *ok=false.
std::optional<int64_t> parse_reply(std::string_view resp, bool* ok);

}  // namespace hmdb::sim
