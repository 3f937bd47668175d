// sim/history_io.h — reads a client-recorded history of register operations from text, for
// checking it with check_linearizable() outside the simulator (hmdb-lincheck, the chaos test).
//
// One operation per line, in either of two forms (they may be mixed; blank lines and lines
// starting with '#' are ignored):
//
//   JSON:  {"client":3,"key":"k1","kind":"incr","arg":0,"result":42,"invoke":1000,"ret":1250,"outcome":"ok"}
//   plain: <client> <key> <kind> <arg|-> <result|nil|-> <invoke> <ret|-> <outcome>
//          e.g. "3 k1 incr - 42 1000 1250 ok"
//
//   kind     set | incr | get
//   arg      SET's value (an int64); ignored for incr and get ("-" in plain form, may be absent in JSON)
//   result   INCR's new value or GET's value (an int64), nil/null for a GET that found nothing,
//            "-"/absent when there is none (a SET, or an op without a reply)
//   invoke   when the client sent the op; ret when the reply arrived (unused for unknown ops)
//   outcome  ok (a reply), failed (definitely no effect), unknown (no reply: timeout,
//            connection drop), committed (no reply, but known to have taken effect)
//
// Times are any integers on one clock (e.g. CLOCK_MONOTONIC nanoseconds of one process).
// Equal times are allowed: normalize_times() turns them into the distinct event numbers the
// checker wants, ordering an invocation before a return at the same time (so two ops that
// touch at one instant count as concurrent, never as ordered: the check stays sound).
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sim/linearizability.h"

namespace hmdb::sim {

// Longest line accepted (a history line is ~100 bytes; longer input is not a history).
inline constexpr size_t kMaxHistoryLineBytes = 4096;
// Longest key accepted.
inline constexpr size_t kMaxHistoryKeyBytes = 512;

// Parses one line into *op. Returns invalid_argument (naming the problem) for a malformed
// line, not_found for a blank or comment line.
Status parse_history_line(std::string_view line, HistoryOp* op);

// Reads every line of in; stops at the first malformed one (the message names its number).
Status read_history(std::istream& in, std::vector<HistoryOp>* history);

// Replaces invoke/ret times with distinct event numbers 1, 2, ... in time order, invocations
// before returns at equal times. Ops whose ret is not used (unknown, failed without ret,
// committed with ret 0) keep ret = 0. Returns invalid_argument if some op returned before
// it was invoked.
Status normalize_times(std::vector<HistoryOp>* history);

}  // namespace hmdb::sim
