// expect: Decoder::count<Item...>(): no encoded size is known for one of these types (a struct?)
// A struct's encoded size is whatever save() writes for it: the count names the saved values.
#include <string>

#include "hmdb/codec.h"

struct Account {
  std::string id;
  int64_t balance = 0;
};

uint64_t accounts(hmdb::Decoder& in) { return in.count<std::string, Account>(); }
