// expect: hmdb app: expected `static void save(const State& s, hmdb::Encoder& out);`
#include "good_app.h"

struct App : good::GoodApp {
  static void save(State& s, hmdb::Encoder& out) { out.varint(s.n); }
};
template class hmdb::AppHost<App>;
