#pragma once
// What an invalidate message asks to delete, decided before anything is deleted: the
// handler's validated settings, and plan(), which turns an event into exact keys and SCAN
// patterns or rejects it. Kept apart from the handler (which owns Redis, the jobs and the
// metrics) so that tests and the fuzzer (tests/fuzz/fuzz_invalidate.cpp) run it directly.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "handlers/handler.hpp"
#include "handlers/key_template.hpp"

namespace tierd::invalidate {

using Piece = KeyPiece;

struct Rule {
  std::string on;  ///< channel glob
  std::vector<std::vector<Piece>> templates;
};

struct Settings {
  std::uint32_t scan_batch = 1000;
  std::size_t unlink_batch = 500;
  std::size_t max_pattern_jobs = 4;
  std::size_t max_items = 1000;
  std::vector<Rule> rules;
};

/// Validates an invalidate handler section (common keys included) found at `path`. Throws
/// ConfigError naming the YAML path and line.
Settings parse_settings(const YAML::Node& section, const std::string& path);

/// What one event asks for.
struct Plan {
  std::vector<std::string> keys;      ///< exact keys (UNLINK), namespace prefix included
  std::vector<std::string> patterns;  ///< SCAN MATCH globs, namespace prefix included
};

/// Why an event was refused: the metric's reason label and a detail for the log.
using Rejection = std::pair<std::string, std::string>;

/// Builds the plan for `e` under key prefix `prefix` (the namespace, no glob characters),
/// or returns why the event is refused.
std::optional<Rejection> plan(const Settings& s, const std::string& prefix, const Event& e,
                              Plan& out);

/// Patterns from messages must start with a literal prefix that ends in ':', so a message
/// can never ask for "*" (every key of the database).
bool safe_pattern(std::string_view p);

}  // namespace tierd::invalidate
