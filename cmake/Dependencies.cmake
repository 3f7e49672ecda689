# Every external dependency becomes an imported target named dep::<what>,
# so component CMakeLists say what they use, not how it is found.
# All of them are Debian 12 packages (see scripts/install-deps.sh, README.md).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)

find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Catch2 2 REQUIRED)

pkg_check_modules(PSL REQUIRED IMPORTED_TARGET libpsl)
pkg_check_modules(LDNS REQUIRED IMPORTED_TARGET ldns)
pkg_check_modules(LIBEVENT REQUIRED IMPORTED_TARGET libevent libevent_pthreads)
pkg_check_modules(NFQ REQUIRED IMPORTED_TARGET libnetfilter_queue libmnl)
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)

add_library(dep::openssl INTERFACE IMPORTED)
target_link_libraries(dep::openssl INTERFACE OpenSSL::SSL OpenSSL::Crypto)
pkg_check_modules(LIBYAML REQUIRED IMPORTED_TARGET yaml-0.1)
add_library(dep::yaml INTERFACE IMPORTED)
target_link_libraries(dep::yaml INTERFACE PkgConfig::LIBYAML)
add_library(dep::json INTERFACE IMPORTED)
target_link_libraries(dep::json INTERFACE nlohmann_json::nlohmann_json)
add_library(dep::cli11 INTERFACE IMPORTED)
target_link_libraries(dep::cli11 INTERFACE CLI11::CLI11)
add_library(dep::psl INTERFACE IMPORTED)
target_link_libraries(dep::psl INTERFACE PkgConfig::PSL)
add_library(dep::ldns INTERFACE IMPORTED)
target_link_libraries(dep::ldns INTERFACE PkgConfig::LDNS)
add_library(dep::libevent INTERFACE IMPORTED)
target_link_libraries(dep::libevent INTERFACE PkgConfig::LIBEVENT)
add_library(dep::nfq INTERFACE IMPORTED)
target_link_libraries(dep::nfq INTERFACE PkgConfig::NFQ)
add_library(dep::toml INTERFACE IMPORTED)
# toml++ is used header-only; exceptions stay on (config is not a hot path).
target_link_libraries(dep::toml INTERFACE PkgConfig::TOMLPP)
