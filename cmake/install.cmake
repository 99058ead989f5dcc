# Installs the runtime (static and shared), the generator, the CMake package and
# a pkg-config file, so an outside project can `find_package(protogen)` and call
# protogen_generate(), or build with `pkg-config --cflags --libs protogen`.
include(CMakePackageConfigHelpers)

set(PROTOGEN_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/protogen")

set(_protogen_libraries protogen_core protogen)
if(TARGET protogen_shared)
  list(APPEND _protogen_libraries protogen_shared)
endif()
install(TARGETS ${_protogen_libraries} EXPORT protogenTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        INCLUDES DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
if(PROTOGEN_HAVE_TLS)
  install(DIRECTORY runtime/include/protogen DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  # Built without OpenSSL: no TLS functions, so no TLS header either.
  install(DIRECTORY runtime/include/protogen DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" PATTERN "tls.h" EXCLUDE)
endif()
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
# The generator reads its version and the runtime ABI from here (generator/protogen/version.py).
install(FILES runtime/include/protogen/version.h DESTINATION "${CMAKE_INSTALL_DATADIR}/protogen")

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

# protogen.pc: paths under ${prefix} where GNUInstallDirs gives relative ones.
foreach(_dir LIBDIR INCLUDEDIR BINDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
    set(PROTOGEN_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
  else()
    set(PROTOGEN_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
  endif()
endforeach()
if(PROTOGEN_HAVE_TLS)
  set(PROTOGEN_PC_TLS_LIBS " -lssl -lcrypto")
else()
  set(PROTOGEN_PC_TLS_LIBS "")
endif()
# libprotogen.a with the io_uring backend needs liburing (the .so carries it).
if(PROTOGEN_HAVE_URING)
  set(PROTOGEN_PC_LIBS_PRIVATE "-luring")
else()
  set(PROTOGEN_PC_LIBS_PRIVATE "")
endif()
configure_file(cmake/protogen.pc.in "${CMAKE_CURRENT_BINARY_DIR}/protogen.pc" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/protogen.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
