// expect: the optional hook info must be `static std::string info(const State& s);`
// A non-const info(State&) used to compile and be silently ignored.
#include "good_app.h"

struct App : good::GoodApp {
  static std::string info(State& s) { return std::to_string(s.n); }
};
template class hmdb::AppHost<App>;
