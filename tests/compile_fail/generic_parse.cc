// expect: hmdb command: cannot tell what parse fills in
#include "good_app.h"

struct App : good::GoodApp {
  static void define(hmdb::Commands<State>& c) {
    c.write(
        "SET", 2,
        [](hmdb::Args a, auto& out, std::string&) {
          out.key = a[1];
          return true;
        },
        &apply_set);
  }
};
template class hmdb::AppHost<App>;
