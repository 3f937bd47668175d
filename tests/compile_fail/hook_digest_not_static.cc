// expect: the optional hook digest must be `static uint64_t digest(const State& s);`
#include "good_app.h"

struct App : good::GoodApp {
  uint64_t digest(const State& s) const { return s.n; }  // a member function: the engine has no App object
};
template class hmdb::AppHost<App>;
