// metrics_lint FILE: checks a scraped /metrics text with the strict checker
// of metrics_checker.h (exit 1 listing every problem), then prints one line
// per family ("# family NAME TYPE") and one per sample in a canonical form
// (labels sorted, values as numbers), for metrics_test.sh to grep:
//   egressd_dns_responses_total{outcome="denied"} 3
#include <fstream>
#include <iostream>
#include <sstream>

#include "metrics_checker.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: metrics_lint FILE\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "metrics_lint: cannot read " << argv[1] << '\n';
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  const auto exposition = metrics_checker::parse(text.str());
  for (const auto& name : exposition.order) {
    const auto& family = exposition.families.at(name);
    std::cout << "# family " << name << ' ' << family.type << '\n';
    for (const auto& sample : family.samples) {
      std::cout << sample.name;
      if (!sample.labels.empty()) {
        std::cout << '{';
        bool first = true;
        for (const auto& [key, value] : sample.labels) {
          std::cout << (first ? "" : ",") << key << "=\"" << value << '"';
          first = false;
        }
        std::cout << '}';
      }
      std::ostringstream value;
      value.precision(15);
      value << sample.value;
      std::cout << ' ' << value.str() << '\n';
    }
  }
  if (!exposition.ok()) {
    std::cerr << exposition.errorText();
    return 1;
  }
  return 0;
}
