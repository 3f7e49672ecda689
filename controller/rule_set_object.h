// An EgressRuleSet as the API server returns it, reduced to what the
// controller mirrors and reports on, plus the mapping to rules-dir files.
//
// File names: "<namespace>_<name>.json". Namespaces are DNS labels and
// names DNS subdomains, neither may contain "_", so the name is unique and
// reversible, and the pattern tells the controller's files from others.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace controller {

struct RuleSetObject {
  std::string ns;
  std::string name;
  int64_t generation = 0;
  std::string resourceVersion;
  nlohmann::json spec;    // as stored (object)
  nlohmann::json status;  // as stored; null when absent

  std::string key() const { return ns + "/" + name; }
};

// From an item of a list or the object of a watch event. nullopt (with
// `error` set) when metadata.name/namespace/resourceVersion are missing.
std::optional<RuleSetObject> ruleSetFromJson(const nlohmann::json& object, std::string& error);

std::string manifestFileName(const RuleSetObject& object);

// True for names this controller writes: "<dns-label>_<dns-subdomain>.json".
// Everything else in the rules dir (hand-written files, temp files of
// others) is never touched.
bool isOwnedFileName(std::string_view fileName);

// The manifest egressd's loader reads: apiVersion, kind, metadata (name,
// namespace, generation) and spec, as pretty JSON. Equal for two versions
// of an object that differ only in status or other metadata, so a status
// write does not rewrite the file.
std::string manifestContent(const RuleSetObject& object);

}  // namespace controller
