// expect: hmdb query: run must be callable as `void run(const State& s, hmdb::Args argv, const hmdb::QueryContext& ctx, hmdb::Reply& r)`
#include "good_app.h"

struct App : good::GoodApp {
  static void define(hmdb::Commands<State>& c) {
    c.query("GET", 1, [](State& s, hmdb::Args, const hmdb::QueryContext&, hmdb::Reply& r) {
      r.integer(static_cast<int64_t>(++s.n));  // a query that writes: on one node only
    });
  }
};
template class hmdb::AppHost<App>;
