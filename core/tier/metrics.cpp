#include "tier/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace tier::metrics {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::observe(double v) {
  // First bucket whose upper bound is >= v; past the last bound is the +Inf bucket.
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  counts_[static_cast<std::size_t>(it - bounds_.begin())] += 1;
  count_ += 1;
  sum_ += v;
}

std::vector<double> default_latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

std::string format_value(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  // The shortest text that reads back as the same double (what fmt's "{}" gave).
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string label_text(const Labels& labels, const char* extra_name = nullptr,
                       const std::string& extra_value = {}) {
  if (labels.empty() && extra_name == nullptr) {
    return {};
  }
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) {
      out += ',';
    }
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  }
  if (extra_name != nullptr) {
    if (!first) {
      out += ',';
    }
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
  return out;
}

std::string escape_help(std::string_view h) {
  std::string out;
  for (char c : h) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

template <class F>
void header(std::string& out, const F& family, const char* type) {
  out += "# HELP " + family.name() + " " + escape_help(family.help()) + "\n# TYPE " +
         family.name() + " " + type + "\n";
}

}  // namespace

Registry::Entry* Registry::find_entry(std::string_view name) {
  for (auto& [n, e] : entries_) {
    if (n == name) {
      return &e;
    }
  }
  return nullptr;
}

const Registry::Entry* Registry::find_entry(std::string_view name) const {
  for (const auto& [n, e] : entries_) {
    if (n == name) {
      return &e;
    }
  }
  return nullptr;
}

namespace {

// Prometheus data model: [a-zA-Z_:][a-zA-Z0-9_:]* for metric names.
bool valid_metric_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ':';
  });
}

}  // namespace

Registry::Entry* Registry::declare(Type type, const std::string& name, const std::string& help) {
  // Declarations are code, not input: a bad one is a programming error, found by any test
  // that builds the component.
  if (!valid_metric_name(name)) {
    throw std::logic_error("metric name '" + name + "' is not a valid Prometheus name");
  }
  if (help.empty()) {
    throw std::logic_error("metric " + name + " declared without help text");
  }
  Entry* e = find_entry(name);
  if (e == nullptr) {
    return nullptr;
  }
  if (e->type != type) {
    throw std::logic_error("metric " + name + " declared with two types");
  }
  const std::string& declared = type == Type::counter ? e->counter->help()
                                : type == Type::gauge ? e->gauge->help()
                                                      : e->histogram->help();
  if (declared != help) {
    throw std::logic_error("metric " + name + " declared twice with different help texts");
  }
  return e;
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help) {
  if (Entry* e = declare(Type::counter, name, help)) {
    return *e->counter;
  }
  Entry e{Type::counter, std::make_unique<Family<Counter>>(name, help), nullptr, nullptr};
  entries_.emplace_back(name, std::move(e));
  return *entries_.back().second.counter;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help) {
  if (Entry* e = declare(Type::gauge, name, help)) {
    return *e->gauge;
  }
  Entry e{Type::gauge, nullptr, std::make_unique<Family<Gauge>>(name, help), nullptr};
  entries_.emplace_back(name, std::move(e));
  return *entries_.back().second.gauge;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<double> bounds) {
  if (Entry* e = declare(Type::histogram, name, help)) {
    return *e->histogram;
  }
  Entry e{Type::histogram, nullptr, nullptr,
          std::make_unique<Family<Histogram>>(name, help, std::move(bounds))};
  entries_.emplace_back(name, std::move(e));
  return *entries_.back().second.histogram;
}

double Registry::value(std::string_view name, const Labels& labels) const {
  const Entry* e = find_entry(name);
  if (e == nullptr) {
    return 0;
  }
  switch (e->type) {
    case Type::counter: {
      const Counter* c = e->counter->find(labels);
      return c == nullptr ? 0 : c->value();
    }
    case Type::gauge: {
      const Gauge* g = e->gauge->find(labels);
      return g == nullptr ? 0 : g->value();
    }
    case Type::histogram: {
      const Histogram* h = e->histogram->find(labels);
      return h == nullptr ? 0 : static_cast<double>(h->count());
    }
  }
  return 0;
}

std::string Registry::render() const {
  std::string out;
  for (const auto& [name, e] : entries_) {
    switch (e.type) {
      case Type::counter:
        header(out, *e.counter, "counter");
        for (const auto& [labels, c] : e.counter->series()) {
          out += name + label_text(labels) + ' ' + format_value(c->value()) + '\n';
        }
        break;
      case Type::gauge:
        header(out, *e.gauge, "gauge");
        for (const auto& [labels, g] : e.gauge->series()) {
          out += name + label_text(labels) + ' ' + format_value(g->value()) + '\n';
        }
        break;
      case Type::histogram:
        header(out, *e.histogram, "histogram");
        for (const auto& [labels, h] : e.histogram->series()) {
          std::uint64_t cumulative = 0;
          for (std::size_t i = 0; i < h->bounds().size(); ++i) {
            cumulative += h->counts()[i];
            out += name + "_bucket" + label_text(labels, "le", format_value(h->bounds()[i])) + ' ' +
                   std::to_string(cumulative) + '\n';
          }
          out += name + "_bucket" + label_text(labels, "le", "+Inf") + ' ' +
                 std::to_string(h->count()) + '\n';
          out += name + "_sum" + label_text(labels) + ' ' + format_value(h->sum()) + '\n';
          out += name + "_count" + label_text(labels) + ' ' + std::to_string(h->count()) + '\n';
        }
        break;
    }
  }
  return out;
}

}  // namespace tier::metrics
