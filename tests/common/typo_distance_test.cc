#include "common/typo_distance.h"

#include <catch2/catch.hpp>

TEST_CASE("typoDistance: edits and neighbour swaps cost one, case costs nothing") {
  CHECK(common::typoDistance("host", "host") == 0);
  CHECK(common::typoDistance("Spec", "spec") == 0);
  CHECK(common::typoDistance("hots", "host") == 1);         // swap
  CHECK(common::typoDistance("sepc", "spec") == 1);         // swap
  CHECK(common::typoDistance("listn", "listen") == 1);      // deletion
  CHECK(common::typoDistance("targetss", "targets") == 1);  // insertion
  CHECK(common::typoDistance("port", "sort") == 1);         // substitution
  CHECK(common::typoDistance("EgressRuleset", "egressruleset") == 0);
  CHECK(common::typoDistance("EgresRuleSets", "egressruleset") == 2);
  CHECK(common::typoDistance("", "name") == 4);
  CHECK(common::typoDistance("name", "") == 4);
  CHECK(common::typoDistance("ab", "ba") == 1);
  CHECK(common::typoDistance("abc", "ca") == 3);  // OSA: no edit of a swapped pair
  CHECK(common::typoDistance("workload", "namespace") > 2);
}
