#pragma once
// Two DOMs equal as trees, with the same type at every node and the same bits in every
// float: what "the same DOM as nlohmann's" means (nlohmann's own == takes 1 == 1u == 1.0).
// Header only, nlohmann only: the unit tests and the fuzz targets both use it.

#include <cstring>

#include <nlohmann/json.hpp>

namespace tiertest {

inline bool same_dom(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.type() != b.type()) {
    return false;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) {
      return false;
    }
    for (auto it = a.begin(), jt = b.begin(); it != a.end(); ++it, ++jt) {
      if (it.key() != jt.key() || !same_dom(*it, *jt)) {
        return false;
      }
    }
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) {
      return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!same_dom(a[i], b[i])) {
        return false;
      }
    }
    return true;
  }
  if (a.is_number_float()) {
    const double x = a.get<double>();
    const double y = b.get<double>();
    return std::memcmp(&x, &y, sizeof x) == 0;
  }
  return a == b;
}

}  // namespace tiertest
