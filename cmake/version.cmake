# protogen's version, read from the one place it is kept: the runtime's
# version.h (which the generator reads too). Sets PROTOGEN_VERSION before
# project() so that project(VERSION) and the package files use it.
file(STRINGS "${CMAKE_CURRENT_LIST_DIR}/../runtime/include/protogen/version.h" _protogen_version_lines
     REGEX "^#define PG_VERSION_(MAJOR|MINOR|PATCH) +[0-9]+ *$")
set(PROTOGEN_VERSION "")
foreach(_part MAJOR MINOR PATCH)
  set(_number "")
  foreach(_line IN LISTS _protogen_version_lines)
    if(_line MATCHES "^#define PG_VERSION_${_part} +([0-9]+)")
      set(_number "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  if(_number STREQUAL "")
    message(FATAL_ERROR "runtime/include/protogen/version.h: no PG_VERSION_${_part}")
  endif()
  list(APPEND PROTOGEN_VERSION "${_number}")
endforeach()
list(JOIN PROTOGEN_VERSION "." PROTOGEN_VERSION)
