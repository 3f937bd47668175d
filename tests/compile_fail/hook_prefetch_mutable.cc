// expect: the optional hook prefetch must be `static void prefetch(const State& s, hmdb::Args argv);`
#include "good_app.h"

struct App : good::GoodApp {
  static void prefetch(State&, hmdb::Args) {}
};
template class hmdb::AppHost<App>;
