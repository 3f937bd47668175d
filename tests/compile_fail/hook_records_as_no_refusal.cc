// expect: the optional hook records_as must be `static bool records_as(const State& s, uint32_t version, hmdb::RecordSink& out);`
// Records at an older version that cannot say "not expressible there".
#include "good_app.h"

struct App : good::GoodApp {
  static void records_as(const State&, uint32_t, hmdb::RecordSink&) {}
};
template class hmdb::AppHost<App>;
