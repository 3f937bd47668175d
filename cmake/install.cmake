# cmake/install.cmake — `cmake --install build --prefix P` installs the engine as a CMake
# package an application builds against from its own repository (docs/app-tutorial.md):
#
#   P/include/hmdb/*.h                  the public API (app.h, codec.h, reply.h, server.h, ...)
#   P/lib/libhmdb_*.a                   the engine's static libraries a server binary links
#   P/lib/cmake/hmdb/                   hmdbConfig.cmake, its version file, the targets
#                                       (hmdb::app, hmdb::server, hmdb::main, hmdb::testing)
#                                       and hmdb_add_app() (hmdbApp.cmake)
#   P/bin/hmdb                          the kv app's server (and the cluster/log tools)
#   P/bin/hmdb-new-app                  the scaffold: a new app folder that builds and tests
#   P/share/hmdb/app-template/          what hmdb-new-app copies
#
# Included at the end of the top-level CMakeLists.txt; nothing here changes the in-tree build.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(HMDB_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hmdb)

# Exported as hmdb::<name>: the engine's layers, and the three targets an app uses.
set(hmdb_exported_targets
  hmdb_xxhash hmdb_app hmdb_common hmdb_raft hmdb_core hmdb_storage hmdb_net hmdb_metrics
  hmdb_server hmdb_main hmdb_testing)
foreach(t ${hmdb_exported_targets})
  string(REPLACE "hmdb_" "" export_name ${t})
  set_target_properties(${t} PROPERTIES EXPORT_NAME ${export_name})
endforeach()

install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/hmdb DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS ${hmdb_exported_targets} EXPORT hmdbTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT hmdbTargets NAMESPACE hmdb:: DESTINATION ${HMDB_CMAKE_INSTALL_DIR})

configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/hmdbConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/hmdbConfig.cmake
                              INSTALL_DESTINATION ${HMDB_CMAKE_INSTALL_DIR})
# 0.x: a minor version may change the API, so an app asks for the minor it was written for.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/hmdbConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/hmdbConfig.cmake ${CMAKE_BINARY_DIR}/hmdbConfigVersion.cmake
              ${CMAKE_SOURCE_DIR}/cmake/hmdbApp.cmake
        DESTINATION ${HMDB_CMAKE_INSTALL_DIR})

if(TARGET hmdb)
  install(TARGETS hmdb RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(PROGRAMS ${CMAKE_SOURCE_DIR}/scripts/hmdb-new-app DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/scripts/app-template/ DESTINATION ${CMAKE_INSTALL_DATADIR}/hmdb/app-template)
