# Test helpers shared by every tests/<component>/CMakeLists.txt.
#
# egressd_add_unit_test(NAME name SOURCES a.cc... LIBS lib...)
#   A Catch2 binary; each TEST_CASE becomes its own ctest test (label "unit").
#
# egressd_add_fuzzer(NAME name SOURCE fuzz_x.cc CORPUS dir LIBS lib...)
#   The same LLVMFuzzerTestOneInput entry point built twice:
#   - <name>_replay (always): feeds every file of CORPUS through it; a ctest
#     test labelled "fuzz", so the normal and sanitizer builds replay the
#     corpus in `make test`;
#   - <name> (EGRESSD_FUZZ=ON, clang): the real libFuzzer binary.
#
# egressd_add_script_test(NAME name COMMAND cmd... [LABELS l] [SERIAL])
#   An end-to-end test driven by a script; SERIAL ones never run in parallel
#   (they share network namespaces, iptables and the NFQUEUE numbers).
include(CTest)
include(Catch)

function(egressd_add_unit_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE egressd_catch_main ${T_LIBS})
  target_compile_definitions(${T_NAME} PRIVATE
    EGRESSD_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    EGRESSD_BINARY_DIR="${CMAKE_BINARY_DIR}")
  catch_discover_tests(${T_NAME} TEST_PREFIX "${T_NAME}: " PROPERTIES LABELS unit)
endfunction()

function(egressd_add_fuzzer)
  cmake_parse_arguments(F "" "NAME;SOURCE;CORPUS" "LIBS" ${ARGN})
  add_executable(${F_NAME}_replay ${F_SOURCE} ${CMAKE_SOURCE_DIR}/tests/fuzz_replay_main.cc)
  target_link_libraries(${F_NAME}_replay PRIVATE ${F_LIBS})
  add_test(NAME fuzz.replay.${F_NAME} COMMAND ${F_NAME}_replay ${F_CORPUS})
  set_tests_properties(fuzz.replay.${F_NAME} PROPERTIES LABELS fuzz)
  if(EGRESSD_FUZZ)
    add_executable(${F_NAME} ${F_SOURCE})
    target_compile_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${F_NAME} PRIVATE ${F_LIBS})
    set_property(GLOBAL APPEND PROPERTY EGRESSD_FUZZERS "${F_NAME}=${F_CORPUS}")
  endif()
endfunction()

function(egressd_add_script_test)
  cmake_parse_arguments(S "SERIAL" "NAME" "COMMAND;LABELS" ${ARGN})
  if(NOT S_LABELS)
    set(S_LABELS e2e)
  endif()
  add_test(NAME ${S_NAME} COMMAND ${S_COMMAND})
  set_tests_properties(${S_NAME} PROPERTIES LABELS "${S_LABELS}"
    ENVIRONMENT "EGRESSD_BIN=${CMAKE_BINARY_DIR}/bin;EGRESSD_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  if(S_SERIAL)
    set_tests_properties(${S_NAME} PROPERTIES RUN_SERIAL TRUE)
  endif()
endfunction()

# Adds every subfolder of the current source dir that has a CMakeLists.txt.
# Folders named after a component (tests/policy, bench/dns) follow
# EGRESSD_COMPONENTS; others (tests/k8s, tests/e2e) are always added.
function(egressd_add_component_folders)
  file(GLOB dirs LIST_DIRECTORIES true ${CMAKE_CURRENT_SOURCE_DIR}/*)
  foreach(dir ${dirs})
    get_filename_component(component ${dir} NAME)
    if(component IN_LIST EGRESSD_ALL_COMPONENTS AND NOT component IN_LIST EGRESSD_COMPONENTS)
      continue()
    endif()
    if(IS_DIRECTORY ${dir} AND EXISTS ${dir}/CMakeLists.txt)
      add_subdirectory(${dir})
    endif()
  endforeach()
endfunction()
