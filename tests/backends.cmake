# Every test of the built-in loop runs on both of its backends: the runtime's,
# the conformance and the end-to-end tests (names matching
# PROTOGEN_BACKEND_TESTS) run on epoll under their own names
# (PROTOGEN_BACKEND=epoll) and, when the io_uring backend is built, a second
# time on io_uring as NAME_uring (label io_uring), skipped (exit 77,
# backend_run) when the kernel refuses io_uring.
#
# Included before the tests are added: add_test is wrapped, so that the
# tests need no change, and the wrapped one's properties are copied at the
# end of the directory that set them (a deferred call).
set(PROTOGEN_BACKEND_TESTS "^(runtime_|conformance_|e2e_)")
# Not twice: what does not run the built-in loop (the libuv, manual and poll
# hosts, the symbol check), the valgrind runs (epoll only), the test of
# epoll_ctl failures, and the backend choice's own test.
set(PROTOGEN_BACKEND_ONCE
    "_(valgrind|libuv|poll)$|^runtime_(uv|uv_datagram|core_symbols|manual|manual_datagram|manual_subprocess|epoll|backend)$")

if(PROTOGEN_HAVE_URING)
  add_executable(backend_run ${CMAKE_CURRENT_LIST_DIR}/backends/backend_run.c)
  target_link_libraries(backend_run PRIVATE protogen)
endif()

# The properties a test may have that its _uring twin needs too.
set(_PG_BACKEND_COPIED TIMEOUT LABELS ENVIRONMENT WILL_FAIL PASS_REGULAR_EXPRESSION FAIL_REGULAR_EXPRESSION
    RUN_SERIAL RESOURCE_LOCK PROCESSORS DEPENDS REQUIRED_FILES FIXTURES_REQUIRED)

function(_pg_backend_finish name twin)
  if(twin)
    foreach(p IN LISTS _PG_BACKEND_COPIED)
      get_test_property(${name} ${p} v)
      if(NOT "${v}" STREQUAL "NOTFOUND")
        set_tests_properties(${name}_uring PROPERTIES ${p} "${v}")
      endif()
    endforeach()
    get_test_property(${name} SKIP_RETURN_CODE skip)
    if(NOT "${skip}" STREQUAL "NOTFOUND")
      message(FATAL_ERROR "tests/backends.cmake: ${name} has a SKIP_RETURN_CODE of its own; backend_run's is 77")
    endif()
    set_property(TEST ${name}_uring APPEND PROPERTY ENVIRONMENT PROTOGEN_BACKEND=io_uring)
    set_property(TEST ${name}_uring APPEND PROPERTY LABELS io_uring)
    set_property(TEST ${name}_uring PROPERTY SKIP_RETURN_CODE 77)
  endif()
  set_property(TEST ${name} APPEND PROPERTY ENVIRONMENT PROTOGEN_BACKEND=epoll)
endfunction()

function(add_test)
  _add_test(${ARGV})
  if(NOT "${ARGV0}" STREQUAL "NAME")
    return()
  endif()
  cmake_parse_arguments(T "COMMAND_EXPAND_LISTS" "NAME;WORKING_DIRECTORY" "COMMAND;CONFIGURATIONS" ${ARGV})
  if(NOT T_NAME MATCHES "${PROTOGEN_BACKEND_TESTS}")
    return()
  endif()
  set(twin OFF)
  if(PROTOGEN_HAVE_URING AND NOT T_NAME MATCHES "${PROTOGEN_BACKEND_ONCE}")
    set(twin ON)
    list(POP_FRONT T_COMMAND exe)
    if(TARGET "${exe}")
      set(exe "$<TARGET_FILE:${exe}>") # add_test resolves a target only as the command's first word
    endif()
    set(args NAME ${T_NAME}_uring COMMAND $<TARGET_FILE:backend_run> io_uring "${exe}" ${T_COMMAND})
    if(T_WORKING_DIRECTORY)
      list(APPEND args WORKING_DIRECTORY "${T_WORKING_DIRECTORY}")
    endif()
    if(T_COMMAND_EXPAND_LISTS)
      list(APPEND args COMMAND_EXPAND_LISTS)
    endif()
    _add_test(${args})
  endif()
  cmake_language(EVAL CODE "cmake_language(DEFER CALL _pg_backend_finish [[${T_NAME}]] ${twin})")
endfunction()
