// expect: the optional hook begin_save must be `static std::unique_ptr<hmdb::SaveProducer> begin_save(State& s);`
// A producer begun on a const State could not hook the app's writes to keep what it has not
// written yet (copy before write): refused, not ignored (the engine would silently fork).
#include "good_app.h"

struct App : good::GoodApp {
  static std::unique_ptr<hmdb::SaveProducer> begin_save(const State&) { return nullptr; }
};
template class hmdb::AppHost<App>;
