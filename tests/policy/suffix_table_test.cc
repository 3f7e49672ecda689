// policy::SuffixTable against libpsl: a table of names of every kind of
// rule, then every rule of the list itself (and its A-label), each asked
// as the rule, one label below and two below; the answer must be libpsl's,
// byte for byte, from the .dat it is built from and, for names as the DNS
// path asks them, from Debian's .dafsa too.
#include <idn2.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "policy/public_suffix.h"
#include "policy/suffix_table.h"
#include "tests/policy/psl_reference.h"
#include "tests/support/alloc_counter.h"

namespace {

const policy::PublicSuffixList& list() {
  return policy::defaultPublicSuffixList();
}

// A name as the DNS path hands it over: printable ASCII, no empty label,
// no trailing dot. libpsl itself answers such names alike from the .dat and
// from Debian's .dafsa (compiled from it); for others its two lookups
// differ (from the .dafsa, "example.com." gives "example.com.", from the
// .dat "com."), and the table follows the .dat it is built from.
bool normalName(std::string_view name) {
  if (name.empty() || name.front() == '.' || name.back() == '.' ||
      name.find("..") != std::string_view::npos) {
    return false;
  }
  for (const char c : name) {
    if (c <= ' ' || static_cast<unsigned char>(c) >= 0x7f) return false;
  }
  return true;
}

void checkLikeLibpsl(const std::string& name) {
  INFO("name: " << name);
  const std::string_view ours = list().registrableDomain(name);
  CHECK(ours == pslreference::registrableDomain(pslreference::fromDat(), name));
  if (normalName(name)) {
    CHECK(ours == pslreference::registrableDomain(pslreference::fromDafsa(), name));
    // The DNS path's lookup, which finds dots from the right only as deep
    // as it needs: the same answer for every such name.
    CHECK(list().registrableDomainOfHost(name) == ours);
  }
  // A view into the name, not a copy.
  CHECK(ours.data() + ours.size() == name.data() + name.size());
}

std::string readList() {
  std::ifstream in(pslreference::kDat, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("registrable domains of known names", "[suffix_table]") {
  struct Case {
    const char* name;
    const char* domain;
  };
  const Case cases[] = {
      {"a.b.example.co.uk", "example.co.uk"},
      {"www.example.com", "example.com"},
      {"example.com", "example.com"},
      {"com", "com"},
      {"co.uk", "co.uk"},
      {"h1.site7.example", "site7.example"},  // no such TLD: the implicit "*"
      {"foo.github.io", "foo.github.io"},     // private section
      {"a.foo.github.io", "foo.github.io"},
      {"x.blogspot.com", "x.blogspot.com"},
      {"a.b.ck", "a.b.ck"},  // *.ck
      {"www.ck", "www.ck"},  // !www.ck
      {"a.www.ck", "www.ck"},
      {"localhost", "localhost"},
      {"xn--85x722f.xn--55qx5d.cn", "xn--85x722f.xn--55qx5d.cn"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    CHECK(list().registrableDomain(c.name) == c.domain);
    checkLikeLibpsl(c.name);
  }
}

TEST_CASE("odd names answer as libpsl does", "[suffix_table]") {
  const std::vector<std::string> names = {
      "",
      ".",
      "..",
      "a.",
      "a..",
      ".com",
      "..com",
      "example.com.",
      "www.example.com.",
      "a..example.com",
      "a...b.co.uk",
      "x.y..ck",
      "WWW.EXAMPLE.COM",
      "Example.Co.Uk",
      "a.b.CK",
      "www.Ck",
      "FOO.GITHUB.IO",
      "A.B.C.D.E.F.G.H.I.J.example.co.uk",
      "1.2.3.4.5.6.7.8.9.kawasaki.jp",
      "a.b.c.d.e.f.g.h.i.j.k",
      "bücher.example",
      "www.食狮.中国",
      "a.食狮.中国",
      "xn--bcher-kva.example",
      "a.b.xn--p1ai",
      std::string("a\0b.example.com", 15),
      std::string("example.com\0.x", 14),
      "-.-",
      "_dmarc.example.org",
      "a.city.kawasaki.jp",
      "x.kawasaki.jp",
      "a.b.x.kawasaki.jp",
      "www.kawasaki.jp",
      std::string(200, 'a') + ".com",
      std::string(255, 'a'),
      std::string(300, 'a') + ".co.uk",
      std::string("a.\xff.com"),
      "a.b.s3.amazonaws.com",
      "x.compute.amazonaws.com",
      "x.y.compute.amazonaws.com",
      "a.b.c.appspot.com",
      "x.herokuapp.com",
      "x.uk.com",
      "a.b.forgot.his.name",
      "forgot.his.name",
      "his.name",
      "name",
  };
  for (const auto& name : names) checkLikeLibpsl(name);
  // Every length of label count from 1 to 130 over a wildcard rule.
  std::string deep = "ck";
  for (int i = 0; i < 130; ++i) {
    deep.insert(0, "l.");
    checkLikeLibpsl(deep);
  }
}

TEST_CASE("every rule of the list, and one and two labels below it", "[suffix_table]") {
  std::istringstream text(readList());
  std::string line;
  size_t rules = 0;
  while (std::getline(text, line)) {
    const size_t begin = line.find_first_not_of(" \t\r");
    if (begin == std::string::npos || line.compare(begin, 2, "//") == 0) continue;
    std::string rule = line.substr(begin, line.find_first_of(" \t\r", begin) - begin);
    if (rule.starts_with("!")) rule.erase(0, 1);
    if (rule.starts_with("*.")) rule.erase(0, 2);
    std::vector<std::string> forms = {rule};
    char* ascii = nullptr;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
    if (idn2_lookup_u8(reinterpret_cast<const uint8_t*>(rule.c_str()), reinterpret_cast<uint8_t**>(&ascii),
                       IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) == IDN2_OK) {
      forms.emplace_back(ascii);
    }
    idn2_free(ascii);
    for (const auto& form : forms) {
      for (const std::string prefix : {"", "x.", "a.x.", "www."}) checkLikeLibpsl(prefix + form);
    }
    ++rules;
  }
  CHECK(rules > 5000);
}

TEST_CASE("the lookup does not allocate", "[suffix_table]") {
  const std::string names[] = {"a.b.example.co.uk", "h1.site7.example", "a.b.ck", "a..b.co.uk",
                               "x.github.io"};
  const auto& suffixes = list();  // loads the list (allocates) before counting
  size_t total = 0;
  testsupport::AllocationCounter counter;
  for (const auto& name : names) total += suffixes.registrableDomain(name).size();
  CHECK(counter.count() == 0);
  CHECK(total > 0);
}

TEST_CASE("a list that is no list is refused", "[suffix_table]") {
  std::string error;
  CHECK_FALSE(policy::SuffixTable::fromText("// only a comment\n\n", error));
  CHECK_THAT(error, Catch::Contains("no rule"));
  const auto table = policy::SuffixTable::fromText("uk\nco.uk\n*.ck\n!www.ck\n", error);
  REQUIRE(table);
  CHECK(table->registrableDomain("a.b.co.uk") == "b.co.uk");
  CHECK(table->registrableDomain("a.www.ck") == "www.ck");
  CHECK(table->registrableDomain("a.b.ck") == "a.b.ck");

  CHECK_FALSE(policy::loadPublicSuffixList(pslreference::kDafsa, error));
  CHECK_THAT(error, Catch::Contains("DAFSA"));
  CHECK_FALSE(policy::loadPublicSuffixList("/nonexistent/list.dat", error));
  CHECK_THAT(error, Catch::Contains("/nonexistent/list.dat"));
}

TEST_CASE("random names built from the list's own labels", "[suffix_table]") {
  // Labels of real rules, wildcard and exception parts, upper case, empty
  // labels, NULs and names of every length up to the 256-byte bound, so the
  // eight-bytes-at-a-time scan meets dots and NULs at every offset.
  const std::vector<std::string> labels = {"com",
                                           "uk",
                                           "co",
                                           "ck",
                                           "www",
                                           "jp",
                                           "kawasaki",
                                           "city",
                                           "github",
                                           "io",
                                           "blogspot",
                                           "amazonaws",
                                           "s3",
                                           "compute",
                                           "eu-central-1",
                                           "cloud9",
                                           "webview-assets",
                                           "appspot",
                                           "x",
                                           "example",
                                           "COM",
                                           "Co",
                                           "",
                                           std::string(1, '\0'),
                                           "a.b",
                                           "xn--p1ai",
                                           "xn--55qx5d",
                                           "cn",
                                           "name",
                                           "his",
                                           "forgot",
                                           "pvt",
                                           "k12",
                                           "wy",
                                           "us",
                                           "\xd0\xb8",
                                           std::string(40, 'q'),
                                           std::string(63, 'z'),
                                           "."};
  uint64_t state = 12345;
  const auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<size_t>(state >> 33);
  };
  for (int n = 0; n < 100000; ++n) {
    std::string name;
    const size_t count = 1 + next() % 9;
    for (size_t i = 0; i < count; ++i) {
      if (i > 0) name += '.';
      name += labels[next() % labels.size()];
    }
    const std::string_view ours = list().registrableDomain(name);
    const std::string_view theirs = pslreference::registrableDomain(pslreference::fromDat(), name);
    if (ours != theirs) {
      INFO("name: " << name);
      CHECK(ours == theirs);
    }
  }
}
