// expect: the optional hook records must be `static void records(const State& s, hmdb::RecordSink& out);`
// A records hook that could change the state it lists (it runs in the digest child, and
// must see the state as every node holds it).
#include "good_app.h"

struct App : good::GoodApp {
  static void records(State&, hmdb::RecordSink&) {}
};
template class hmdb::AppHost<App>;
