// expect: hmdb command: apply must be callable as `void apply(State& s, const Typed& args, const hmdb::ApplyContext& ctx, hmdb::Reply& r)`
#include "good_app.h"

struct App : good::GoodApp {
  static void define(hmdb::Commands<State>& c) {
    c.write("SET", 2, &good::parse_set, [](State& s, good::Set&, const hmdb::ApplyContext&, hmdb::Reply& r) {
      s.n++;
      r.ok();
    });
  }
};
template class hmdb::AppHost<App>;
