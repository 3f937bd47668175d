# hmdbApp.cmake — hmdb_add_app(), the one CMake call that makes an application's server
# binary, for an app built against the installed package (find_package(hmdb) includes this
# file; docs/app-tutorial.md). In the engine's own tree, apps/CMakeLists.txt has its own
# hmdb_add_app for kv and ledger, which write their main() themselves.
#
#   hmdb_add_app(<name> <source>... [TESTS <test source>...])
#
# The app's sources name the app with HMDB_APP(App) (hmdb/server.h) and hold no main().
# Creates:
#   <name>_app   an OBJECT library of the app's sources (linked by the two below; add the
#                app's own dependencies to it: target_link_libraries(<name>_app PUBLIC ...))
#   <name>       the server executable: the app, the engine and its main(); every subcommand
#                and flag of `hmdb` (serve, cluster, snapshot, log dump|verify, version)
#   with TESTS:
#   <name>_test  a GoogleTest executable of the test sources, linked with the app,
#                hmdb::testing (hmdb/testing.h) and GTest::gtest_main; registered with
#                ctest as <name>_test (and enable_testing() is called in the calling
#                directory: call hmdb_add_app from the top-level CMakeLists.txt, or call
#                enable_testing() there yourself, for `ctest` in the build's root)
# With no build type (CMAKE_BUILD_TYPE empty), the app is compiled with -O2, as the engine is.
function(_hmdb_add_app name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "TESTS")
  set(sources ${arg_UNPARSED_ARGUMENTS})
  if(NOT sources)
    message(FATAL_ERROR "hmdb_add_app(${name}): give the app's source files, e.g. hmdb_add_app(${name} ${name}.cc)")
  endif()
  if("TESTS" IN_LIST arg_KEYWORDS_MISSING_VALUES)
    message(FATAL_ERROR "hmdb_add_app(${name}): TESTS needs at least one test source file")
  endif()
  get_property(multi_config GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
  set(optimize "")
  if(NOT multi_config AND NOT CMAKE_BUILD_TYPE)
    set(optimize -O2)
  endif()

  add_library(${name}_app OBJECT ${sources})
  target_link_libraries(${name}_app PUBLIC hmdb::app)
  target_compile_options(${name}_app PRIVATE ${optimize})

  add_executable(${name})
  target_link_libraries(${name} PRIVATE ${name}_app hmdb::main)

  if(arg_TESTS)
    find_package(GTest)
    if(NOT GTest_FOUND)
      message(FATAL_ERROR "hmdb_add_app(${name} ... TESTS ...): the tests need GoogleTest "
                          "(Debian: apt-get install libgtest-dev)")
    endif()
    add_executable(${name}_test ${arg_TESTS})
    target_link_libraries(${name}_test PRIVATE ${name}_app hmdb::testing GTest::gtest_main)
    target_compile_options(${name}_test PRIVATE ${optimize})
    add_test(NAME ${name}_test COMMAND ${name}_test)
  endif()
endfunction()

# A macro around the function: enable_testing() must run in the caller's scope (it sets a
# variable that a function's scope would drop).
macro(hmdb_add_app)
  _hmdb_add_app(${ARGV})
  if(TARGET ${ARGV0}_test)
    enable_testing()
  endif()
endmacro()
