#pragma once
// Start-up errors (DESIGN §2): thrown while reading the config, caught once in main,
// printed as "<yaml path> (line N): what", exit 78 (EX_CONFIG).

#include <stdexcept>
#include <string>

namespace tierd {

class ConfigError : public std::runtime_error {
 public:
  /// `line` is 1-based; 0 = unknown (e.g. a value from the environment).
  ConfigError(std::string path, int line, const std::string& what)
      : std::runtime_error(format(path, line, what)), path_(std::move(path)), line_(line) {}

  const std::string& path() const noexcept { return path_; }
  int line() const noexcept { return line_; }

 private:
  static std::string format(const std::string& path, int line, const std::string& what) {
    std::string out = path.empty() ? std::string("config") : path;
    if (line > 0) {
      out += " (line " + std::to_string(line) + ")";
    }
    return out + ": " + what;
  }

  std::string path_;
  int line_;
};

}  // namespace tierd
