// expect: hmdb app: expected `static void define(hmdb::Commands<State>& c);`
#include "good_app.h"

struct App : good::GoodApp {
  static void define(hmdb::Commands<State>) {}  // registers into a copy the engine never sees
};
template class hmdb::AppHost<App>;
