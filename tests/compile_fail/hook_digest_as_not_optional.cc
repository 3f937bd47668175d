// expect: the optional hook digest_as must be `static std::optional<uint64_t> digest_as(const State& s, uint32_t version);`
// A digest at an older version that cannot say "not expressible there".
#include "good_app.h"

struct App : good::GoodApp {
  static uint64_t digest_as(const State&, uint32_t) { return 0; }
};
template class hmdb::AppHost<App>;
