#include "controller/plan.h"

#include "controller/rule_set_object.h"

namespace controller {

Plan plan(const std::map<std::string, std::string>& desired,
          const std::map<std::string, std::string>& current) {
  Plan out;
  for (const auto& [name, content] : desired) {
    if (!isOwnedFileName(name)) continue;
    const auto it = current.find(name);
    if (it == current.end() || it->second != content) out.writes.push_back({name, content});
  }
  for (const auto& [name, content] : current) {
    if (isOwnedFileName(name) && desired.find(name) == desired.end()) out.deletes.push_back(name);
  }
  return out;
}

}  // namespace controller
