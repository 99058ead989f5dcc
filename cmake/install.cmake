# Installs the runtime, the generator and the CMake package, so an outside
# project can `find_package(protogen)` and call protogen_generate().
include(CMakePackageConfigHelpers)

set(PROTOGEN_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/protogen")

install(TARGETS protogen_core protogen EXPORT protogenTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(DIRECTORY runtime/include/protogen DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT protogenTargets NAMESPACE protogen:: DESTINATION "${PROTOGEN_CMAKE_DIR}")
# protogen::uv in an export set of its own: the package loads it only where
# libuv is found, so protogen::protogen users need no libuv.
install(TARGETS protogen_uv EXPORT protogenUvTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT protogenUvTargets NAMESPACE protogen:: DESTINATION "${PROTOGEN_CMAKE_DIR}")

install(PROGRAMS bin/protogen DESTINATION "${CMAKE_INSTALL_BINDIR}")
install(DIRECTORY generator/protogen DESTINATION "${CMAKE_INSTALL_DATADIR}/protogen/generator"
        FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
install(DIRECTORY templates/ DESTINATION "${CMAKE_INSTALL_DATADIR}/protogen/templates")

configure_package_config_file(cmake/protogenConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/protogenConfig.cmake"
  INSTALL_DESTINATION "${PROTOGEN_CMAKE_DIR}"
  PATH_VARS CMAKE_INSTALL_BINDIR)
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/protogenConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/protogenConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/protogenConfigVersion.cmake"
              cmake/ProtogenGenerate.cmake
        DESTINATION "${PROTOGEN_CMAKE_DIR}")
