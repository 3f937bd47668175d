// tests/core/route_test.cc — the one routing decision, every case in one table: each kind of
// command on a single node, a cluster's leader (one voter, several voters), a follower or
// learner or a node that knows no leader (route() sees all three as "not leading"; the
// redirect reply says which), with and without READONLY, with an unapplied write of the
// session ahead of it, and with a held command ahead of it; and for a session whose commands
// a follower forwards to the leader (a plain client), with a forwarded command ahead of it.
#include "core/route.h"

#include <gtest/gtest.h>

#include <string>

namespace hmdb::core {
namespace {

constexpr CommandClass W = CommandClass::kAppWrite;
constexpr CommandClass Q = CommandClass::kAppQuery;
constexpr CommandClass L = CommandClass::kShellLocal;
constexpr CommandClass B = CommandClass::kShellBarrier;
constexpr CommandClass U = CommandClass::kUnknown;
constexpr CommandClass X = CommandClass::kWatch;
constexpr CommandClass S = CommandClass::kShellWrite;

constexpr NodeView kSingle{false, true, false};
constexpr NodeView kLeaderAlone{true, true, false};   // a cluster of one voter (plus learners)
constexpr NodeView kLeader{true, true, true};         // several voters: reads take a read-index round
constexpr NodeView kNotLeading{true, false, false};   // follower, learner, or no leader known

struct Case {
  const char* what;
  CommandClass cls;
  NodeView node;
  SessionView session;  // readonly, held_before, write_before, forward, forward_before
  Route expected;
};

constexpr SessionView kFresh{false, false, false, false, false};
constexpr SessionView kReadonly{true, false, false, false, false};
constexpr SessionView kAfterWrite{false, false, true, false, false};
constexpr SessionView kReadonlyAfterWrite{true, false, true, false, false};
constexpr SessionView kHeld{false, true, false, false, false};
constexpr SessionView kHeldAfterWrite{false, true, true, false, false};
// A plain client's session on a node that forwards.
constexpr SessionView kPlain{false, false, false, true, false};
constexpr SessionView kPlainHeld{false, true, false, true, false};
constexpr SessionView kPlainAfterWrite{false, false, true, true, false};
constexpr SessionView kPlainAfterForward{false, false, false, true, true};
constexpr SessionView kReadonlyAfterForward{true, false, false, false, true};

const Case kCases[] = {
    // Unknown commands: an error, wherever and whatever is ahead.
    {"unknown, single", U, kSingle, kFresh, Route::kError},
    {"unknown, follower", U, kNotLeading, kFresh, Route::kError},
    {"unknown, held", U, kLeader, kHeld, Route::kError},
    // A single node: writes batch; queries run now, or after the session's write.
    {"write, single", W, kSingle, kFresh, Route::kWrite},
    {"write behind write, single", W, kSingle, kAfterWrite, Route::kWrite},
    {"query, single", Q, kSingle, kFresh, Route::kRunNow},
    {"query behind write, single", Q, kSingle, kAfterWrite, Route::kQueryAtApply},
    {"local shell, single", L, kSingle, kFresh, Route::kRunNow},
    {"local shell behind write, single", L, kSingle, kAfterWrite, Route::kQueryAtApply},
    {"barrier, single", B, kSingle, kFresh, Route::kRunBarrier},
    {"barrier behind write, single", B, kSingle, kAfterWrite, Route::kHold},
    // The leader of one voter: like a single node.
    {"query, leader alone", Q, kLeaderAlone, kFresh, Route::kRunNow},
    {"query behind write, leader alone", Q, kLeaderAlone, kAfterWrite, Route::kQueryAtApply},
    // The leader of several voters: queries after a read-index round, after the session's writes.
    {"write, leader", W, kLeader, kFresh, Route::kWrite},
    {"query, leader", Q, kLeader, kFresh, Route::kReadIndex},
    {"query behind write, leader", Q, kLeader, kAfterWrite, Route::kHold},
    {"READONLY query, leader", Q, kLeader, kReadonly, Route::kRunNow},
    {"READONLY query behind write, leader", Q, kLeader, kReadonlyAfterWrite, Route::kQueryAtApply},
    {"local shell, leader", L, kLeader, kFresh, Route::kRunNow},
    {"barrier, leader", B, kLeader, kFresh, Route::kRunBarrier},
    {"barrier behind write, leader", B, kLeader, kAfterWrite, Route::kHold},
    // Not leading (follower, learner, no leader): app commands are redirected, except a
    // READONLY client's queries; the shell's own commands are answered here.
    {"write, follower", W, kNotLeading, kFresh, Route::kRedirect},
    {"write behind held, follower", W, kNotLeading, kHeld, Route::kRedirect},
    {"query, follower", Q, kNotLeading, kFresh, Route::kRedirect},
    {"READONLY query, follower", Q, kNotLeading, kReadonly, Route::kRunNow},
    {"READONLY write, follower", W, kNotLeading, kReadonly, Route::kRedirect},
    {"READONLY query behind write, follower", Q, kNotLeading, kReadonlyAfterWrite, Route::kQueryAtApply},
    {"local shell, follower", L, kNotLeading, kFresh, Route::kRunNow},
    {"barrier, follower", B, kNotLeading, kFresh, Route::kRunBarrier},
    // Something held ahead: everything but errors and redirects waits behind it.
    {"write behind held, leader", W, kLeader, kHeld, Route::kHold},
    {"query behind held, single", Q, kSingle, kHeld, Route::kHold},
    {"local shell behind held, leader", L, kLeader, kHeld, Route::kHold},
    {"barrier behind held, leader", B, kLeader, kHeldAfterWrite, Route::kHold},
    {"READONLY query behind held, follower", Q, kNotLeading, SessionView{true, true, false, false, false}, Route::kHold},
    // A plain client on a node that does not lead: its app commands are forwarded, in their
    // place (behind a held command they wait); a READONLY query still runs here, and the
    // shell's own commands too.
    {"write, follower, forwarding", W, kNotLeading, kPlain, Route::kForward},
    {"query, follower, forwarding", Q, kNotLeading, kPlain, Route::kForward},
    {"write behind held, follower, forwarding", W, kNotLeading, kPlainHeld, Route::kHold},
    {"query behind a forward, follower", Q, kNotLeading, kPlainAfterForward, Route::kForward},
    {"write behind a local write, follower (former leader)", W, kNotLeading, kPlainAfterWrite, Route::kForward},
    {"local shell behind a forward, follower", L, kNotLeading, kPlainAfterForward, Route::kRunNow},
    {"unknown behind a forward, follower", U, kNotLeading, kPlainAfterForward, Route::kError},
    {"barrier behind a forward, follower", B, kNotLeading, kPlainAfterForward, Route::kHold},
    {"READONLY query behind a forward, follower", Q, kNotLeading, kReadonlyAfterForward, Route::kHold},
    // A node that leads now, with a forwarded command of the session still unanswered (it
    // led since): what runs here waits for it.
    {"write behind a forward, leader", W, kLeader, kPlainAfterForward, Route::kHold},
    {"query behind a forward, leader", Q, kLeader, kPlainAfterForward, Route::kHold},
    {"write, leader, forwarding session", W, kLeader, kPlain, Route::kWrite},
    {"query, leader, forwarding session", Q, kLeader, kPlain, Route::kReadIndex},
    {"local shell behind a forward, leader", L, kLeader, kPlainAfterForward, Route::kRunNow},
    // WATCH: redirected where an app command would be (forwarding or not), a barrier for order.
    {"WATCH, single", X, kSingle, kFresh, Route::kRunBarrier},
    {"WATCH behind write, leader", X, kLeader, kAfterWrite, Route::kHold},
    {"WATCH, follower", X, kNotLeading, kFresh, Route::kRedirect},
    {"READONLY WATCH, follower", X, kNotLeading, kReadonly, Route::kRedirect},
    {"WATCH, follower, forwarding", X, kNotLeading, kPlain, Route::kRedirect},
    {"WATCH behind a forward, leader", X, kLeader, kPlainAfterForward, Route::kHold},
    // A logged shell command (ACL SETUSER): a barrier where it is logged (a single node, the
    // leader), forwarded or redirected like an app write elsewhere (READONLY changes nothing).
    {"shell write, single", S, kSingle, kFresh, Route::kRunBarrier},
    {"shell write behind write, single", S, kSingle, kAfterWrite, Route::kHold},
    {"shell write, leader", S, kLeader, kFresh, Route::kRunBarrier},
    {"shell write behind held, leader", S, kLeader, kHeld, Route::kHold},
    {"shell write, follower", S, kNotLeading, kFresh, Route::kRedirect},
    {"READONLY shell write, follower", S, kNotLeading, kReadonly, Route::kRedirect},
    {"shell write, follower, forwarding", S, kNotLeading, kPlain, Route::kForward},
    {"shell write behind held, follower, forwarding", S, kNotLeading, kPlainHeld, Route::kHold},
    {"shell write behind a forward, leader", S, kLeader, kPlainAfterForward, Route::kHold},
};

const char* name(Route r) {
  switch (r) {
    case Route::kError: return "kError";
    case Route::kRedirect: return "kRedirect";
    case Route::kForward: return "kForward";
    case Route::kHold: return "kHold";
    case Route::kWrite: return "kWrite";
    case Route::kReadIndex: return "kReadIndex";
    case Route::kQueryAtApply: return "kQueryAtApply";
    case Route::kRunNow: return "kRunNow";
    case Route::kRunBarrier: return "kRunBarrier";
  }
  return "?";
}

TEST(Route, EveryCase) {
  for (const Case& c : kCases)
    EXPECT_STREQ(name(route(c.cls, c.node, c.session)), name(c.expected)) << c.what;
}

}  // namespace
}  // namespace hmdb::core
