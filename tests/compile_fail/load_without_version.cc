// expect: hmdb app: expected `static bool load(State& s, hmdb::Decoder& in, uint32_t version);`
#include "good_app.h"

struct App : good::GoodApp {
  static bool load(State& s, hmdb::Decoder& in) { return good::GoodApp::load(s, in, 1); }
};
template class hmdb::AppHost<App>;
