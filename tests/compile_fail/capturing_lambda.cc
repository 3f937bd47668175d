// expect: hmdb command: apply must be stateless
// A counter kept in a capture is neither replicated nor saved in snapshots.
#include "good_app.h"

struct App : good::GoodApp {
  static void define(hmdb::Commands<State>& c) {
    static uint64_t calls = 0;
    uint64_t* counter = &calls;
    c.write("SET", 2, &good::parse_set, [counter](State&, const good::Set&, const hmdb::ApplyContext&, hmdb::Reply& r) {
      r.integer(static_cast<int64_t>(++*counter));
    });
  }
};
template class hmdb::AppHost<App>;
