// expect: the optional hook save_as must be `static bool save_as(const State& s, uint32_t version, hmdb::Encoder& out);`
// An older version's layout written with the arguments of save() first: refused, not ignored
// (the digest at an older active version would silently fall back to this binary's own).
#include "good_app.h"

struct App : good::GoodApp {
  static bool save_as(const State&, hmdb::Encoder&, uint32_t) { return false; }
};
template class hmdb::AppHost<App>;
