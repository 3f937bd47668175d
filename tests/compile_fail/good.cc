// expect: compiles
// The control: the good app, and the same with hooks declared noexcept or overloaded, compile.
#include "good_app.h"

struct Overloaded : good::GoodApp {
  static std::string info(const State& s) noexcept { return std::to_string(s.n); }
  static std::string info(const State& s, int) { return std::to_string(s.n); }  // a helper of the same name
};

template class hmdb::AppHost<good::GoodApp>;
template class hmdb::AppHost<Overloaded>;
