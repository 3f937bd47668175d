// tests/raft/scenario_test.cc — readable protocol scenarios for the consensus core, in the
// spirit of etcd's datadriven tests. Each file in testdata/*.txt is a script of commands,
// each followed by `----` and the expected output, compared verbatim:
//
//   add-nodes 3 [pre-vote=true] [check-quorum=true] [lease=false] [election=10]
//               [heartbeat=1] [max-inflight=64] [max-append-bytes=N] [snapshot-chunk=N]
//               [voters=1,2,3] [learners=4]        ids continue after existing nodes
//               [bugs=commit-old-term,two-votes,vote-before-persist,apply-before-commit,keep-suffix,
//                     learners-never-campaign]
//   campaign 1 | propose 1 data | conf-change 1 add-learner|promote|remove|add-voter 4
//   transfer 1 2 | read-index 1 ctx | tick 1 [n] | tick all [n]
//   deliver            one round: every node handles its Ready, messages are delivered
//   stabilize [quiet]  rounds until nothing moves (quiet: print nothing but events)
//   drop 1->2 | isolate 1 | heal | crash 1 | restart 1 | compact 1 [index]
//   async-disk         from now on writes are durable only at `sync`; a crash loses the rest
//   sync 1 | sync all | sync-disk (back to a synchronous disk, syncing everything now)
//   status | log 1
//
// Set HMDB_REWRITE=1 to rewrite the expected outputs from the current behaviour (then read
// the diff: that is the review).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster.h"

#ifndef HMDB_RAFT_TESTDATA
#error "HMDB_RAFT_TESTDATA must name the testdata folder"
#endif

namespace hmdb::raft::testing {
namespace {

struct Block {
  std::string preamble;  // comments and blank lines before the command, kept on rewrite
  std::string command;
  int line = 0;
  std::vector<std::string> expected;
};

std::vector<Block> parse_script(const std::string& text) {
  std::vector<Block> blocks;
  std::istringstream in(text);
  std::string line;
  std::string preamble;
  int lineno = 0;
  while (std::getline(in, line)) {
    lineno++;
    if (line.empty() || line[0] == '#') {
      preamble += line + "\n";
      continue;
    }
    Block b;
    b.preamble = std::move(preamble);
    preamble.clear();
    b.command = line;
    b.line = lineno;
    std::string sep;
    if (!std::getline(in, sep) || sep != "----") {
      ADD_FAILURE() << "line " << lineno + 1 << ": expected ---- after command '" << line << "'";
      return blocks;
    }
    lineno++;
    while (std::getline(in, line)) {
      lineno++;
      if (line.empty()) break;
      b.expected.push_back(line);
    }
    blocks.push_back(std::move(b));
  }
  return blocks;
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

std::vector<NodeId> parse_ids(const std::string& s) {
  std::vector<NodeId> out;
  for (auto& p : split_state(s)) {
    if (!p.empty()) out.push_back(std::stoull(p));
  }
  return out;
}

class Interpreter {
 public:
  Interpreter() {
    cluster_.out = [this](const std::string& s) { output_.push_back(s); };
  }

  std::vector<std::string> run(const std::string& command) {
    output_.clear();
    std::vector<std::string> w = split_words(command);
    HMDB_ASSERT(!w.empty(), "empty command");
    const std::string& c = w[0];
    if (c == "add-nodes") {
      add_nodes(w);
    } else if (c == "campaign") {
      node(w.at(1)).raft->campaign();
    } else if (c == "propose") {
      ProposeResult r = node(w.at(1)).raft->propose(EntryType::kNormal, 1, w.at(2));
      print_propose(r);
    } else if (c == "conf-change") {
      ConfChange cc;
      const std::string& t = w.at(2);
      if (t == "add-learner") cc.type = ConfChangeType::kAddLearner;
      else if (t == "promote") cc.type = ConfChangeType::kPromote;
      else if (t == "remove") cc.type = ConfChangeType::kRemove;
      else if (t == "add-voter") cc.type = ConfChangeType::kAddVoter;
      else HMDB_ASSERT(false, "unknown conf change %s", t.c_str());
      cc.node = std::stoull(w.at(3));
      print_propose(node(w.at(1)).raft->propose_conf_change(cc));
    } else if (c == "transfer") {
      node(w.at(1)).raft->transfer_leadership(std::stoull(w.at(2)));
    } else if (c == "read-index") {
      bool ok = node(w.at(1)).raft->read_index(std::stoull(w.at(2)));
      output_.push_back(ok ? "accepted" : "refused");
    } else if (c == "tick") {
      int n = w.size() > 2 ? std::stoi(w[2]) : 1;
      for (int i = 0; i < n; i++) {
        if (w.at(1) == "all") {
          for (auto& [id, nd] : cluster_.nodes) cluster_.tick(id);
        } else {
          cluster_.tick(std::stoull(w[1]));
        }
      }
    } else if (c == "deliver") {
      cluster_.deliver_round(true);
    } else if (c == "stabilize") {
      cluster_.stabilize(!(w.size() > 1 && w[1] == "quiet"));
    } else if (c == "drop") {
      auto arrow = w.at(1).find("->");
      cluster_.cut.insert({std::stoull(w[1].substr(0, arrow)), std::stoull(w[1].substr(arrow + 2))});
    } else if (c == "isolate") {
      NodeId x = std::stoull(w.at(1));
      for (auto& [id, nd] : cluster_.nodes) {
        if (id == x) continue;
        cluster_.cut.insert({x, id});
        cluster_.cut.insert({id, x});
      }
    } else if (c == "heal") {
      cluster_.cut.clear();
    } else if (c == "crash") {
      cluster_.crash(std::stoull(w.at(1)));
    } else if (c == "restart") {
      cluster_.restart(std::stoull(w.at(1)));
    } else if (c == "async-disk") {
      cluster_.sync_disk = false;
    } else if (c == "sync-disk") {
      cluster_.sync_disk = true;
      for (auto& [id, nd] : cluster_.nodes) cluster_.sync(id);
    } else if (c == "sync") {
      if (w.at(1) == "all") {
        for (auto& [id, nd] : cluster_.nodes) cluster_.sync(id);
      } else {
        cluster_.sync(std::stoull(w[1]));
      }
    } else if (c == "compact") {
      Index at = w.size() > 2 ? std::stoull(w.at(2)) : 0;
      if (!cluster_.compact(std::stoull(w.at(1)), at)) output_.push_back("nothing to compact");
    } else if (c == "status") {
      for (auto& [id, nd] : cluster_.nodes) output_.push_back(cluster_.status_line(id));
    } else if (c == "log") {
      MemNode& n = node(w.at(1));
      Status s = n.raft->status();
      if (n.snap) output_.push_back("snapshot " + std::to_string(n.snap->index) + "/" + std::to_string(n.snap->term));
      for (auto& e : n.log) output_.push_back(format_entry(e));
      output_.push_back("state=[" + join_state(n.state) + "] commit=" + std::to_string(s.commit));
    } else {
      HMDB_ASSERT(false, "unknown command '%s'", c.c_str());
    }
    return output_;
  }

 private:
  MemNode& node(const std::string& id) { return cluster_.nodes.at(std::stoull(id)); }

  void print_propose(const ProposeResult& r) {
    static const char* errors[] = {"ok", "not leader", "busy", "transferring", "rejected"};
    if (r.error == ProposeError::kNone) {
      output_.push_back("index=" + std::to_string(r.index) + " term=" + std::to_string(r.term));
    } else {
      output_.push_back(std::string("error: ") + errors[static_cast<int>(r.error)]);
    }
  }

  void add_nodes(const std::vector<std::string>& w) {
    int count = std::stoi(w.at(1));
    Config cfg;
    NodeId first = cluster_.nodes.empty() ? 1 : cluster_.nodes.rbegin()->first + 1;
    ConfState conf;
    for (int i = 0; i < count; i++) conf.voters.push_back(first + i);
    for (size_t i = 2; i < w.size(); i++) {
      auto eq = w[i].find('=');
      HMDB_ASSERT(eq != std::string::npos, "option %s needs =", w[i].c_str());
      std::string k = w[i].substr(0, eq), v = w[i].substr(eq + 1);
      if (k == "pre-vote") cfg.pre_vote = v == "true";
      else if (k == "check-quorum") cfg.check_quorum = v == "true";
      else if (k == "lease") cfg.lease_reads = v == "true";
      else if (k == "election") cfg.election_ticks = std::stoul(v);
      else if (k == "heartbeat") cfg.heartbeat_ticks = std::stoul(v);
      else if (k == "max-inflight") cfg.max_inflight_appends = std::stoul(v);
      else if (k == "max-append-bytes") cfg.max_append_bytes = std::stoull(v);
      else if (k == "snapshot-chunk") cfg.snapshot_chunk_bytes = std::stoull(v);
      else if (k == "bugs") {
        for (auto& b : split_state(v)) {
          if (b == "commit-old-term") cfg.bugs.commit_old_term_by_counting = true;
          else if (b == "two-votes") cfg.bugs.grant_two_votes_per_term = true;
          else if (b == "vote-before-persist") cfg.bugs.answer_vote_before_persisting = true;
          else if (b == "apply-before-commit") cfg.bugs.apply_before_commit = true;
          else if (b == "keep-suffix") cfg.bugs.keep_log_suffix_on_snapshot_install = true;
          else if (b == "learners-never-campaign") cfg.bugs.learners_never_campaign = true;
          else HMDB_ASSERT(false, "unknown bug %s", b.c_str());
        }
      }
      else if (k == "voters") conf.voters = parse_ids(v);
      else if (k == "learners") conf.learners = parse_ids(v);
      else HMDB_ASSERT(false, "unknown option %s", k.c_str());
    }
    for (int i = 0; i < count; i++) cluster_.add_node(first + i, cfg, conf);
  }

  Cluster cluster_;
  std::vector<std::string> output_;
};

class ScenarioTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScenarioTest, Script) {
  std::string path = std::string(HMDB_RAFT_TESTDATA) + "/" + GetParam();
  std::ifstream f(path);
  ASSERT_TRUE(f) << "cannot open " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<Block> blocks = parse_script(ss.str());
  ASSERT_FALSE(blocks.empty()) << path << " has no commands";
  bool rewrite = std::getenv("HMDB_REWRITE") != nullptr;
  Interpreter interp;
  std::string rewritten;
  for (Block& b : blocks) {
    std::vector<std::string> got = interp.run(b.command);
    if (rewrite) {
      rewritten += b.preamble + b.command + "\n----\n";
      for (auto& l : got) rewritten += l + "\n";
      rewritten += "\n";
      continue;
    }
    std::string want_s, got_s;
    for (auto& l : b.expected) want_s += l + "\n";
    for (auto& l : got) got_s += l + "\n";
    ASSERT_EQ(want_s, got_s) << path << ":" << b.line << ": " << b.command;
  }
  if (rewrite) {
    while (rewritten.size() > 1 && rewritten[rewritten.size() - 1] == '\n' && rewritten[rewritten.size() - 2] == '\n') {
      rewritten.pop_back();
    }
    std::ofstream o(path);
    o << rewritten;
  }
}

std::vector<std::string> scripts() {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator(HMDB_RAFT_TESTDATA)) {
    if (e.path().extension() == ".txt") out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Raft, ScenarioTest, ::testing::ValuesIn(scripts()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param.substr(0, info.param.size() - 4);
                           for (char& c : n) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace hmdb::raft::testing
