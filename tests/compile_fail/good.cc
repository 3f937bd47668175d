// expect: compiles
// The control: the good app, and the same with hooks declared noexcept or overloaded, compile;
// so do commands given as functions, lambdas without captures (no `+[]`), function objects
// without members, and a generic lambda with Typed named.
#include "good_app.h"

struct Overloaded : good::GoodApp {
  static std::string info(const State& s) noexcept { return std::to_string(s.n); }
  static std::string info(const State& s, int) { return std::to_string(s.n); }  // a helper of the same name
};

struct ApplySet {  // a function object without data members
  void operator()(good::GoodApp::State& s, const good::Set&, const hmdb::ApplyContext&, hmdb::Reply& r) const {
    s.n++;
    r.ok();
  }
};

struct Callables : good::GoodApp {
  static void define(hmdb::Commands<State>& c) {
    c.write("SET", 2, &good::parse_set, ApplySet{});
    c.write("SET2", 2, good::parse_set, [](State& s, const good::Set&, const hmdb::ApplyContext&, hmdb::Reply& r) {
      s.n += 2;
      r.ok();
    });
    c.write<good::Set>(
        "SET3", 2,
        [](hmdb::Args a, auto& out, std::string&) {
          out.key = a[1];
          return true;
        },
        ApplySet{});
    c.query("GET", 1, [](const State& s, hmdb::Args, const hmdb::QueryContext&, hmdb::Reply& r) {
      r.integer(static_cast<int64_t>(s.n));
    });
  }
};

template class hmdb::AppHost<good::GoodApp>;
template class hmdb::AppHost<Callables>;
template class hmdb::AppHost<Overloaded>;
