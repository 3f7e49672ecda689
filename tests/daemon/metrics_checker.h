// A small, strict reader of the Prometheus text exposition format 0.0.4,
// for tests: it parses a scrape back into families and samples and lists
// every rule the text breaks (rather than stopping at the first):
//   - # HELP and # TYPE (each at most once) before the family's samples,
//     samples of a family contiguous, no sample without a # TYPE;
//   - valid metric and label names, label values with only \\ \" \n escapes,
//     no duplicate series;
//   - counters: name ends in _total, value finite and >= 0;
//   - histograms: _bucket with `le` ascending and cumulative, ending in
//     le="+Inf", _count equal to the +Inf bucket, a _sum;
//   - (egressd's convention) every family is named egressd_*.
// Header-only; used by metrics_test.cc and the metrics_lint tool.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace metrics_checker {

struct Sample {
  std::string name;  // with suffix (_bucket, _sum, _count)
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string type;
  std::string help;
  bool hasHelp = false;
  std::vector<Sample> samples;
};

struct Exposition {
  std::map<std::string, Family> families;
  std::vector<std::string> order;  // family names as they appeared
  std::vector<std::string> errors;

  bool ok() const { return errors.empty(); }
  // The value of the one sample `name` with exactly `labels`; nullopt if none.
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& [family, f] : families) {
      for (const Sample& s : f.samples) {
        if (s.name == name && s.labels == labels) return s.value;
      }
    }
    return std::nullopt;
  }
  // Sum of every sample `name` whose labels include `match`.
  double sum(const std::string& name, const std::map<std::string, std::string>& match = {}) const {
    double total = 0;
    for (const auto& [family, f] : families) {
      for (const Sample& s : f.samples) {
        if (s.name != name) continue;
        bool all = true;
        for (const auto& [k, v] : match) {
          auto it = s.labels.find(k);
          if (it == s.labels.end() || it->second != v) all = false;
        }
        if (all) total += s.value;
      }
    }
    return total;
  }
  std::string errorText() const {
    std::string out;
    for (const auto& e : errors) out += e + "\n";
    return out;
  }
};

inline bool validMetricName(std::string_view name) {
  static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(name.begin(), name.end(), re);
}

inline bool validLabelName(std::string_view name) {
  static const std::regex re("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(name.begin(), name.end(), re) && !name.starts_with("__");
}

inline std::optional<double> parseValue(std::string_view text) {
  if (text == "+Inf" || text == "Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  if (text.empty()) return std::nullopt;
  std::string copy(text);
  char* end = nullptr;
  const double value = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) return std::nullopt;
  return value;
}

// The family a sample name belongs to, given the declared families.
inline std::string familyOf(const std::string& sample, const std::map<std::string, Family>& families) {
  if (families.count(sample) != 0) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string_view s(suffix);
    if (sample.size() > s.size() && sample.ends_with(s)) {
      const std::string base = sample.substr(0, sample.size() - s.size());
      auto it = families.find(base);
      if (it != families.end() && (it->second.type == "histogram" || it->second.type == "summary"))
        return base;
    }
  }
  return sample;
}

inline void checkHistogram(const std::string& name, const Family& f, std::vector<std::string>& errors) {
  // Group by the labels other than le.
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // le, value
    std::optional<double> count, sum;
    bool infLast = false;
  };
  std::map<std::map<std::string, std::string>, Series> series;
  for (const Sample& s : f.samples) {
    auto labels = s.labels;
    if (s.name == name + "_bucket") {
      auto le = labels.find("le");
      if (le == labels.end()) {
        errors.push_back(name + ": bucket without le");
        continue;
      }
      const auto bound = parseValue(le->second);
      if (!bound) {
        errors.push_back(name + ": bad le \"" + le->second + "\"");
        continue;
      }
      labels.erase(le);
      series[labels].buckets.emplace_back(*bound, s.value);
    } else if (s.name == name + "_count") {
      series[labels].count = s.value;
    } else if (s.name == name + "_sum") {
      series[labels].sum = s.value;
    } else {
      errors.push_back(name + ": unexpected sample " + s.name + " in a histogram");
    }
  }
  for (const auto& [labels, s] : series) {
    if (s.buckets.empty()) {
      errors.push_back(name + ": no buckets");
      continue;
    }
    for (size_t i = 1; i < s.buckets.size(); ++i) {
      if (!(s.buckets[i].first > s.buckets[i - 1].first)) errors.push_back(name + ": le not ascending");
      if (s.buckets[i].second < s.buckets[i - 1].second) errors.push_back(name + ": buckets not cumulative");
    }
    if (!std::isinf(s.buckets.back().first)) errors.push_back(name + ": last bucket is not le=\"+Inf\"");
    if (!s.count) {
      errors.push_back(name + ": no _count");
    } else if (*s.count != s.buckets.back().second) {
      errors.push_back(name + ": _count differs from the +Inf bucket");
    }
    if (!s.sum) errors.push_back(name + ": no _sum");
  }
}

inline Exposition parse(const std::string& text) {
  Exposition out;
  std::set<std::string> seriesSeen;
  std::string current;  // family of the previous sample
  std::set<std::string> finished;
  std::istringstream in(text);
  std::string line;
  size_t number = 0;
  const auto error = [&](const std::string& message) {
    out.errors.push_back("line " + std::to_string(number) + ": " + message + ": " + line);
  };
  if (!text.empty() && text.back() != '\n') out.errors.push_back("the text does not end with a line feed");
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      if (!validMetricName(name)) {
        error("bad metric name in " + keyword);
        continue;
      }
      if (out.families.count(name) == 0) out.order.push_back(name);
      Family& f = out.families[name];
      if (!f.samples.empty()) error(keyword + " after the family's samples");
      if (keyword == "TYPE") {
        std::string type, extra;
        words >> type >> extra;
        if (!f.type.empty()) error("second TYPE");
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
            type != "untyped") {
          error("unknown type");
        }
        if (!extra.empty()) error("text after the type");
        f.type = type;
      } else {
        if (f.hasHelp) error("second HELP");
        f.hasHelp = true;
        const size_t at = line.find(name) + name.size();
        f.help = at < line.size() ? line.substr(at + 1) : "";
        for (size_t i = 0; i < f.help.size(); ++i) {
          if (f.help[i] == '\\') {
            if (i + 1 >= f.help.size() || (f.help[i + 1] != '\\' && f.help[i + 1] != 'n'))
              error("bad escape in HELP");
            ++i;
          }
        }
      }
      continue;
    }
    // name{labels} value [timestamp]
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    Sample sample;
    sample.name = line.substr(0, i);
    if (!validMetricName(sample.name)) {
      error("bad metric name");
      continue;
    }
    std::string canonical = sample.name + "{";
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool bad = false;
      while (i < line.size() && line[i] != '}') {
        size_t start = i;
        while (i < line.size() && line[i] != '=') ++i;
        const std::string key = line.substr(start, i - start);
        if (!validLabelName(key)) bad = true;
        if (i + 1 >= line.size() || line[i + 1] != '"') {
          bad = true;
          break;
        }
        i += 2;
        std::string value;
        bool closed = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (i >= line.size()) break;
            const char e = line[i++];
            if (e == '\\') {
              value += '\\';
            } else if (e == '"') {
              value += '"';
            } else if (e == 'n') {
              value += '\n';
            } else {
              bad = true;
            }
          } else {
            value += c;
          }
        }
        if (!closed) {
          bad = true;
          break;
        }
        if (sample.labels.count(key) != 0) bad = true;
        sample.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (bad || i >= line.size()) {
        error("bad labels");
        continue;
      }
      ++i;  // '}'
    }
    for (const auto& [k, v] : sample.labels) canonical += k + "=" + v + "\x1f";
    if (i >= line.size() || line[i] != ' ') {
      error("no value");
      continue;
    }
    std::istringstream rest(line.substr(i + 1));
    std::string valueText, timestamp, extra;
    rest >> valueText >> timestamp >> extra;
    const auto value = parseValue(valueText);
    if (!value || !extra.empty()) {
      error("bad value");
      continue;
    }
    sample.value = *value;
    const std::string family = familyOf(sample.name, out.families);
    auto it = out.families.find(family);
    if (it == out.families.end() || it->second.type.empty()) {
      error("sample before its # TYPE");
      continue;
    }
    if (family != current) {
      if (finished.count(family) != 0) error("family's samples are not contiguous");
      if (!current.empty()) finished.insert(current);
      current = family;
    }
    if (!seriesSeen.insert(canonical).second) error("duplicate series");
    Family& f = it->second;
    if (f.type == "counter") {
      if (!std::isfinite(sample.value) || sample.value < 0) error("counter not finite and >= 0");
    }
    if (f.type != "histogram" && f.type != "summary" && sample.name != family)
      error("sample name differs from family");
    f.samples.push_back(std::move(sample));
  }
  for (const auto& name : out.order) {
    const Family& f = out.families[name];
    if (!name.starts_with("egressd_")) out.errors.push_back(name + ": not named egressd_*");
    if (f.type.empty()) out.errors.push_back(name + ": no # TYPE");
    if (!f.hasHelp) out.errors.push_back(name + ": no # HELP");
    if (f.type == "counter" && !name.ends_with("_total"))
      out.errors.push_back(name + ": counter not named *_total");
    if (f.type != "counter" && name.ends_with("_total"))
      out.errors.push_back(name + ": *_total is not a counter");
    if (f.type == "histogram") checkHistogram(name, f, out.errors);
  }
  return out;
}

}  // namespace metrics_checker
