// expect: hmdb command: parse must be callable as `bool parse(hmdb::Args argv, Typed& out, std::string& error)`
// parse fills in a copy: every command would run with default arguments.
#include "good_app.h"

struct App : good::GoodApp {
  static bool parse(hmdb::Args, good::Set out, std::string&) { return !out.key.empty(); }
  static void define(hmdb::Commands<State>& c) { c.write<good::Set>("SET", 2, &parse, &apply_set); }
};
template class hmdb::AppHost<App>;
