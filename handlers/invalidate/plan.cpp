#include "handlers/invalidate/plan.hpp"

#include "config/yaml.hpp"
#include "handlers/key_template.hpp"
#include "tier/glob.hpp"
#include "tier/keys.hpp"

namespace tierd::invalidate {

namespace {

constexpr const char* kInvalidationChannel = "system:cache_invalidation";

bool has_glob(std::string_view s) {
  return s.find_first_of("*?[]\\") != std::string_view::npos;
}

}  // namespace

bool safe_pattern(std::string_view p) {
  const auto glob = p.find_first_of("*?[\\");
  const auto colon = p.find(':');
  return colon != std::string_view::npos && colon > 0 && colon < glob;
}

Settings parse_settings(const YAML::Node& section, const std::string& path) {
  std::vector<std::string> keys = common_handler_keys();
  for (const char* k : {"scan_batch", "unlink_batch", "max_pattern_jobs", "max_items", "rules"}) {
    keys.emplace_back(k);
  }
  yaml::Map m(section, path, keys);
  Settings s;
  s.scan_batch = static_cast<std::uint32_t>(m.integer("scan_batch", 1000, 1, 100000));
  s.unlink_batch = static_cast<std::size_t>(m.integer("unlink_batch", 500, 1, 100000));
  s.max_pattern_jobs = static_cast<std::size_t>(m.integer("max_pattern_jobs", 4, 1, 1000));
  s.max_items = static_cast<std::size_t>(m.integer("max_items", 1000, 1, 1000000));
  if (m.has("rules")) {
    const YAML::Node rules = m.get("rules");
    const std::string rp = m.path_of("rules");
    if (!rules.IsSequence()) {
      yaml::fail(rules, rp, "expected a list of {on, invalidate} rules");
    }
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const std::string p = rp + "[" + std::to_string(i) + "]";
      yaml::Map r(rules[i], p, {"on", "invalidate"});
      Rule rule;
      rule.on = r.required_string("on");
      if (auto e = tier::check_id(rule.on, "rule channel")) {
        yaml::fail(r.get("on"), r.path_of("on"), e->message);
      }
      if (!r.has("invalidate")) {
        yaml::fail(rules[i], r.path_of("invalidate"), "required key is missing");
      }
      const auto templates = r.strings("invalidate", {});
      if (templates.empty()) {
        yaml::fail(r.get("invalidate"), r.path_of("invalidate"), "needs at least one key template");
      }
      for (std::size_t j = 0; j < templates.size(); ++j) {
        const std::string tp = r.path_of("invalidate") + "[" + std::to_string(j) + "]";
        const int line = yaml::line_of(r.get("invalidate")[j]);
        if (auto e = tier::check_id(templates[j], "key template")) {
          throw ConfigError(tp, line, e->message);
        }
        rule.templates.push_back(parse_key_template(templates[j], tp, line));
      }
      s.rules.push_back(std::move(rule));
    }
  }
  return s;
}

std::optional<Rejection> plan(const Settings& s, const std::string& prefix, const Event& e,
                              Plan& out) {
  using Reason = Rejection;
  const nlohmann::json& body = e.body;

  auto check_field = [](const nlohmann::json& v, const std::string& name,
                        bool allow_glob) -> std::optional<Reason> {
    if (!v.is_string()) {
      return Reason{"wrong_type", name + " must be a string"};
    }
    const auto& str = v.get_ref<const std::string&>();
    if (auto err = tier::check_id(str, name)) {
      return Reason{"bad_value", err->message};
    }
    if (!allow_glob && has_glob(str)) {
      return Reason{"bad_value", name + " contains glob characters"};
    }
    return std::nullopt;
  };

  if (e.channel == kInvalidationChannel) {
    bool any = false;
    if (body.contains("keys")) {
      any = true;
      const auto& keys = body["keys"];
      if (!keys.is_array()) {
        return Reason{"wrong_type", "keys must be an array of strings"};
      }
      for (const auto& k : keys) {
        // Exact keys are sent as UNLINK arguments, not patterns: glob characters are literal.
        if (auto r = check_field(k, "keys[]", true)) {
          return r;
        }
        out.keys.push_back(prefix + k.get<std::string>());
      }
    }
    if (body.contains("patterns")) {
      any = true;
      const auto& pats = body["patterns"];
      if (!pats.is_array()) {
        return Reason{"wrong_type", "patterns must be an array of strings"};
      }
      for (const auto& p : pats) {
        if (auto r = check_field(p, "patterns[]", true)) {
          return r;
        }
        const auto& str = p.get_ref<const std::string&>();
        if (!safe_pattern(str)) {
          return Reason{"unsafe_pattern",
                        "a pattern must start with a literal prefix ending in ':' (e.g. "
                        "'project:42:*')"};
        }
        out.patterns.push_back(tier::glob_escape(prefix) + str);
      }
    }
    // Ids are escaped, not refused, where they go into a pattern (DESIGN §4).
    for (const char* id_field : {"session_id", "project_id"}) {
      if (!body.contains(id_field)) {
        continue;
      }
      any = true;
      if (auto r = check_field(body[id_field], id_field, true)) {
        return r;
      }
      const std::string scope = std::string(id_field) == "session_id" ? "session:" : "project:";
      out.patterns.push_back(tier::glob_escape(prefix) + scope +
                             tier::glob_escape(body[id_field].get<std::string>()) + ":*");
    }
    if (!any && s.rules.empty()) {
      return Reason{"empty", "no keys, patterns, session_id or project_id"};
    }
    if (!any) {
      bool rule_matches = false;
      for (const auto& rule : s.rules) {
        rule_matches = rule_matches || tier::glob_match(rule.on, e.channel);
      }
      if (!rule_matches) {
        return Reason{"empty", "no keys, patterns, session_id or project_id"};
      }
    }
  }

  for (const auto& rule : s.rules) {
    if (!tier::glob_match(rule.on, e.channel)) {
      continue;
    }
    for (const auto& tmpl : rule.templates) {
      std::string built;
      for (const auto& piece : tmpl) {
        if (!piece.field) {
          built += piece.text;
          continue;
        }
        if (!body.contains(piece.text)) {
          return Reason{"missing_field", "field '" + piece.text + "' is missing"};
        }
        // A rule's template decides what is a glob; a value never adds one.
        if (auto r = check_field(body[piece.text], piece.text, false)) {
          return r;
        }
        built += body[piece.text].get<std::string>();
      }
      if (has_glob(built)) {
        out.patterns.push_back(tier::glob_escape(prefix) + built);
      } else {
        out.keys.push_back(prefix + built);
      }
    }
  }

  if (out.keys.size() + out.patterns.size() > s.max_items) {
    return Reason{"too_many_items", "the message names more than max_items keys and patterns"};
  }
  if (out.keys.empty() && out.patterns.empty()) {
    return Reason{"empty", "nothing to invalidate"};
  }
  return std::nullopt;
}

}  // namespace tierd::invalidate
