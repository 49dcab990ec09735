// Invalidation planning (tierd::invalidate::plan): a message's channel and JSON body become
// exact keys and SCAN patterns. A message must never widen what is deleted, so for every
// plan this checks the handler's own rules (invalidate.hpp): every pattern starts with a
// literal prefix ending in ':' (never "*"), the namespace stands before every key and
// pattern, no key or pattern carries a control character, a placeholder's value never adds
// a glob character, an id is escaped so that its pattern matches that id only; and it
// rebuilds what the message asked for from the body to check the plan holds exactly that.
//
// Input: the channel, a newline, then the JSON body (inputs whose body is not a JSON object
// are skipped: the dispatcher refuses them before any handler runs).

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "handlers/invalidate/invalidate.hpp"
#include "handlers/invalidate/plan.hpp"
#include "tier/glob.hpp"
#include "tier/keys.hpp"

namespace {

using Json = nlohmann::json;
namespace inv = tierd::invalidate;

// Valid sections, as an operator would write them: rules on two channel families and on
// the invalidation channel itself, keys and patterns, several placeholders; and none.
constexpr const char* kWithRules = R"(
type: invalidate
name: fuzz
on: ["system:cache_invalidation", "events:*"]
max_items: 40
rules:
  - on: events:version_promoted
    invalidate: ["project:{project_id}:analysis:*", "project:{project_id}:summary"]
  - on: "events:session_*"
    invalidate: ["session:{session_id}:*", "user:{user_id}:sessions:{session_id}"]
  - on: system:cache_invalidation
    invalidate: ["audit:{project_id}:last"]
)";
constexpr const char* kWithoutRules = R"(
type: invalidate
on: ["system:cache_invalidation"]
)";

// The namespaces the plan is checked under (a namespace has no glob characters).
const char* const kPrefixes[] = {"", "staging:"};

const std::set<std::string> kReasons{"wrong_type", "bad_value",     "unsafe_pattern",
                                     "empty",      "missing_field", "too_many_items"};

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_invalidate: %s\n  %s\n", what, detail.c_str());
  std::abort();
}

void require(bool ok, const char* what, const std::string& detail = {}) {
  if (!ok) {
    finding(what, detail);
  }
}

bool has_glob(std::string_view s) {
  return s.find_first_of("*?[]\\") != std::string_view::npos;
}

// The text every key a glob matches must start with: its characters up to the first
// unescaped *, ? or [ (a backslash takes the next character literally, as in Redis).
std::string literal_prefix(std::string_view glob) {
  std::string out;
  for (std::size_t i = 0; i < glob.size(); ++i) {
    const char c = glob[i];
    if (c == '*' || c == '?' || c == '[') {
      break;
    }
    if (c == '\\' && i + 1 < glob.size()) {
      ++i;
    }
    out += glob[i];
  }
  return out;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
}

// A field value the handler may put in a key: a string that check_id() accepts.
const std::string* id_value(const Json& body, const std::string& field, bool allow_glob) {
  const auto it = body.find(field);
  if (it == body.end() || !it->is_string()) {
    return nullptr;
  }
  const auto& s = it->get_ref<const std::string&>();
  if (tier::check_id(s, field) || (!allow_glob && has_glob(s))) {
    return nullptr;
  }
  return &s;
}

inv::Settings load(const char* yaml) {
  const YAML::Node section = YAML::Load(yaml);
  // The factory accepts it (what --check-config runs) ...
  (void)tierd::invalidate_factory()(section, "handlers[0]", tierd::HostInfo{});
  // ... and these are the settings its handler plans with.
  return inv::parse_settings(section, "handlers[0]");
}

const inv::Settings& with_rules() {
  static const inv::Settings s = load(kWithRules);
  return s;
}

const inv::Settings& without_rules() {
  static const inv::Settings s = load(kWithoutRules);
  return s;
}

// What the rules of kWithRules ask for on `channel`, or false when a placeholder's field is
// unusable (the message must then be refused).
bool expected_from_rules(const std::string& prefix, const std::string& channel, const Json& body,
                         std::vector<std::string>& keys, std::vector<std::string>& patterns) {
  auto field = [&](const char* name) { return id_value(body, name, false); };
  if (channel == "events:version_promoted" || channel == "system:cache_invalidation") {
    const std::string* p = field("project_id");
    if (p == nullptr) {
      return false;
    }
    if (channel == "events:version_promoted") {
      patterns.push_back(prefix + "project:" + *p + ":analysis:*");
      keys.push_back(prefix + "project:" + *p + ":summary");
    } else {
      keys.push_back(prefix + "audit:" + *p + ":last");
    }
  }
  if (tier::glob_match("events:session_*", channel)) {
    const std::string* s = field("session_id");
    const std::string* u = field("user_id");
    if (s == nullptr || u == nullptr) {
      return false;
    }
    patterns.push_back(prefix + "session:" + *s + ":*");
    keys.push_back(prefix + "user:" + *u + ":sessions:" + *s);
  }
  return true;
}

void run(const inv::Settings& s, const std::string& prefix, const tierd::Event& e) {
  const bool rules = !s.rules.empty();
  inv::Plan plan;
  const auto rejected = inv::plan(s, prefix, e, plan);
  const std::string where = prefix + " | " + e.channel + " | " + e.body.dump();

  // Safety holds for whatever was planned, refused or not.
  for (const auto& k : plan.keys) {
    require(k.compare(0, prefix.size(), prefix) == 0, "a key outside the namespace", k);
    require(!has_control(k), "a key with a control character", where);
  }
  for (const auto& p : plan.patterns) {
    require(!has_control(p), "a pattern with a control character", where);
    const std::string lit = literal_prefix(p);
    require(lit.compare(0, prefix.size(), prefix) == 0, "a pattern outside the namespace", p);
    const auto colon = lit.find(':', prefix.size());
    require(colon != std::string::npos && colon > prefix.size(),
            "a pattern without a literal prefix ending in ':'", p + " in " + where);
  }
  if (rejected) {
    require(kReasons.count(rejected->first) == 1, "unknown rejection reason", rejected->first);
    return;
  }
  require(!plan.keys.empty() || !plan.patterns.empty(), "an accepted plan deletes nothing", where);
  require(plan.keys.size() + plan.patterns.size() <= s.max_items, "more than max_items", where);

  // What the message asked for, rebuilt from the body: all of it is planned, and nothing else.
  std::vector<std::string> keys;
  std::vector<std::string> patterns;
  const Json& body = e.body;
  if (e.channel == "system:cache_invalidation") {
    if (body.contains("keys")) {
      for (const auto& k : body["keys"]) {
        keys.push_back(prefix + k.get<std::string>());
      }
    }
    if (body.contains("patterns")) {
      for (const auto& p : body["patterns"]) {
        const auto& str = p.get_ref<const std::string&>();
        require(inv::safe_pattern(str), "an unsafe message pattern was planned", str);
        patterns.push_back(prefix + str);
      }
    }
    for (const char* id_field : {"session_id", "project_id"}) {
      const std::string* id = id_value(body, id_field, true);
      if (body.contains(id_field)) {
        require(id != nullptr, "a bad id was accepted", where);
        const std::string scope = std::string(id_field) == "session_id" ? "session:" : "project:";
        const std::string want = prefix + scope + *id + ":";
        // The id's own pattern: everything under that id's literal prefix, so it matches
        // that id's keys and no other id's (a message pattern may look the same).
        const auto it =
            std::find_if(plan.patterns.begin(), plan.patterns.end(), [&](const std::string& p) {
              return literal_prefix(p) == want && tier::glob_match(p, want) &&
                     tier::glob_match(p, want + "x:y");
            });
        require(it != plan.patterns.end(), "an id's pattern is missing or not escaped", where);
        patterns.push_back(*it);
      }
    }
  }
  if (rules) {
    const bool usable = expected_from_rules(prefix, e.channel, body, keys, patterns);
    require(usable, "accepted although a rule's field is missing or unsafe", where);
  }
  std::vector<std::string> got_keys = plan.keys;
  std::vector<std::string> got_patterns = plan.patterns;
  std::sort(keys.begin(), keys.end());
  std::sort(patterns.begin(), patterns.end());
  std::sort(got_keys.begin(), got_keys.end());
  std::sort(got_patterns.begin(), got_patterns.end());
  require(got_keys == keys, "planned keys differ from what the message asked for", where);
  require(got_patterns == patterns, "planned patterns differ from what the message asked for",
          where);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // A bad fixed section fails here, once, not as a finding per input.
  (void)with_rules();
  (void)without_rules();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto nl = in.find('\n');
  if (nl == std::string_view::npos) {
    return 0;
  }
  auto e = std::make_shared<tierd::Event>();
  e->channel = std::string(in.substr(0, nl));
  const std::string_view text = in.substr(nl + 1);
  e->body = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (e->body.is_discarded() || !e->body.is_object()) {
    return 0;
  }
  e->raw_bytes = text.size();
  for (const char* prefix : kPrefixes) {
    run(with_rules(), prefix, *e);
    run(without_rules(), prefix, *e);
  }
  return 0;
}
