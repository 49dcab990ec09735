#pragma once
// A small Prometheus registry (text exposition format 0.0.4). Counters, gauges and
// fixed-bucket histograms, each a family of series told apart by labels. Series are
// created on first use and never move, so code keeps the reference `with()` returns and
// counts without a lookup. Single-threaded: everything runs on the loop thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tier::metrics {

/// Label name/value pairs, in the order they are rendered.
using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  /// Adds `v` (>= 0; negative values are ignored: a counter only goes up).
  void inc(double v = 1.0) {
    if (v > 0) {
      value_ += v;
    }
  }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Gauge {
 public:
  void set(double v) { value_ = v; }
  void inc(double v = 1.0) { value_ += v; }
  void dec(double v = 1.0) { value_ -= v; }
  /// When set, the gauge reads `fn` at render time (queue depths, link states). Whoever
  /// sets it clears it (set_function(nullptr)) before the captured state dies.
  void set_function(std::function<double()> fn) { fn_ = std::move(fn); }
  double value() const { return fn_ ? fn_() : value_; }

 private:
  double value_ = 0;
  std::function<double()> fn_;
};

class Histogram {
 public:
  /// `bounds` are the upper bounds of the buckets, ascending; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  /// Per-bucket (non-cumulative) counts; one more than bounds() (the +Inf bucket).
  const std::vector<std::uint64_t>& counts() const { return counts_; }
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

enum class Type { counter, gauge, histogram };

/// Every series of one metric name. `with()` returns a reference that stays valid until
/// the series is removed or the registry dies.
template <class M>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), bounds_(std::move(bounds)) {}

  M& with(const Labels& labels = {}) {
    auto it = series_.find(labels);
    if (it == series_.end()) {
      it = series_.emplace(labels, make()).first;
    }
    return *it->second;
  }
  /// nullptr when the series does not exist (tests, read-only lookups).
  const M* find(const Labels& labels = {}) const {
    auto it = series_.find(labels);
    return it == series_.end() ? nullptr : it->second.get();
  }
  /// Drops one series (a handler instance removed by a reload).
  void remove(const Labels& labels) { series_.erase(labels); }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::map<Labels, std::unique_ptr<M>>& series() const { return series_; }

 private:
  std::unique_ptr<M> make() const {
    if constexpr (std::is_same_v<M, Histogram>) {
      return std::make_unique<M>(bounds_);
    } else {
      return std::make_unique<M>();
    }
  }

  std::string name_;
  std::string help_;
  std::vector<double> bounds_;
  std::map<Labels, std::unique_ptr<M>> series_;
};

/// Default latency buckets, in seconds (1 ms .. 10 s).
std::vector<double> default_latency_buckets();

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Declares (or returns the already declared) family. A name that is not a Prometheus
  /// name, an empty help text, or a second declaration with another type or help throws
  /// std::logic_error: that is a programming error. Components declare their families
  /// once, in a struct, and keep the references.
  Family<Counter>& counter(const std::string& name, const std::string& help);
  Family<Gauge>& gauge(const std::string& name, const std::string& help);
  Family<Histogram>& histogram(const std::string& name, const std::string& help,
                               std::vector<double> bounds = default_latency_buckets());

  /// Current value of a counter or gauge series, or a histogram's count; 0 when absent.
  double value(std::string_view name, const Labels& labels = {}) const;

  /// Every family, in declaration order, in Prometheus text format 0.0.4.
  std::string render() const;

 private:
  struct Entry {
    Type type;
    std::unique_ptr<Family<Counter>> counter;
    std::unique_ptr<Family<Gauge>> gauge;
    std::unique_ptr<Family<Histogram>> histogram;
  };
  /// Validates a declaration; the entry when the name is declared already (same type and
  /// help), nullptr when it is new. Throws std::logic_error on a bad or conflicting one.
  Entry* declare(Type type, const std::string& name, const std::string& help);
  Entry* find_entry(std::string_view name);
  const Entry* find_entry(std::string_view name) const;

  std::vector<std::pair<std::string, Entry>> entries_;
};

/// Escapes a label value for the text format (backslash, double quote, newline).
std::string escape_label_value(std::string_view v);

}  // namespace tier::metrics
