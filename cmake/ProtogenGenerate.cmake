# protogen_generate(<target> SPEC <file> [OUTPUT_DIR <dir>] [HANDLERS_DIR <dir>] [NO_HANDLERS]
#                   [CORE_ONLY] [DIAGRAMS])
#
# Runs protogen on SPEC at build time and compiles the result into <target>:
#   - <name>.h, <name>.c (the protocol) and <name>_bind.c (what ties it to the built-in
#     loop) go to OUTPUT_DIR (default: ${CMAKE_CURRENT_BINARY_DIR}/protogen), regenerated
#     whenever the spec, the generator or a template changes; their names come from
#     `protogen --list-outputs` at configure time;
#   - OUTPUT_DIR is added to <target>'s include path and protogen::protogen is linked
#     (protogen::core with CORE_ONLY);
#   - <name>_handlers.c in HANDLERS_DIR (default: beside the spec) is your code. If it
#     does not exist, the skeleton is written there once, at configure time; it is
#     never overwritten. It is added to <target> unless NO_HANDLERS is given.
#   - CORE_ONLY: for a protocol run on a host of your own (protogen/manual.h, a
#     libuv host, a test's memory driver): <name>_bind.c is neither generated nor
#     compiled, and <target> links protogen::core (the sans-I/O core: no loop, no
#     thread) instead of protogen::protogen. Use it for every spec of a target or
#     for none: protogen::protogen holds the core too.
#   - DIAGRAMS: also <name>.dot (Graphviz) and <name>.mmd (Mermaid), the protocol's
#     states drawn (asyncio's lifecycle for a spec without states), and <name>.svg
#     from the .dot when Graphviz's dot is installed.
#
# PROTOGEN_EXECUTABLE must name bin/protogen (set by the protogen package or source tree).

if(POLICY CMP0116)
  cmake_policy(SET CMP0116 NEW)  # depfile paths relative to the build directory
endif()

if(NOT PROTOGEN_EXECUTABLE)
  message(FATAL_ERROR "protogen_generate: PROTOGEN_EXECUTABLE is not set")
endif()

execute_process(COMMAND "${PROTOGEN_EXECUTABLE}" --version
                RESULT_VARIABLE _protogen_rc OUTPUT_VARIABLE _protogen_version
                ERROR_VARIABLE _protogen_err OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _protogen_rc EQUAL 0)
  message(FATAL_ERROR "protogen does not run (${PROTOGEN_EXECUTABLE}): ${_protogen_err}")
endif()

function(protogen_generate target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "NO_HANDLERS;CORE_ONLY;DIAGRAMS" "SPEC;OUTPUT_DIR;HANDLERS_DIR" "")
  if(NOT arg_SPEC)
    message(FATAL_ERROR "protogen_generate(${target}): SPEC is required")
  endif()
  get_filename_component(spec "${arg_SPEC}" ABSOLUTE)
  if(NOT EXISTS "${spec}")
    message(FATAL_ERROR "protogen_generate(${target}): no such spec: ${spec}")
  endif()
  set(out "${arg_OUTPUT_DIR}")
  if(NOT out)
    set(out "${CMAKE_CURRENT_BINARY_DIR}/protogen")
  endif()
  file(MAKE_DIRECTORY "${out}")

  set(handlers_dir "${arg_HANDLERS_DIR}")
  if(NOT handlers_dir)
    get_filename_component(handlers_dir "${spec}" DIRECTORY)
  endif()
  get_filename_component(handlers_dir "${handlers_dir}" ABSOLUTE)

  # The generator says what it writes (the header first, the handler skeleton
  # last): nothing here re-derives it from the spec. Asked again whenever the
  # spec changes, since the protocol's name may have.
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${spec}")
  set(generated "header,source,bind")   # what the build regenerates
  set(runtime protogen::protogen)
  if(arg_CORE_ONLY)
    set(generated "header,source")        # no NAME_bind.c: nothing of the loop
    set(runtime protogen::core)
  endif()
  if(arg_DIAGRAMS)
    set(generated "${generated},dot,mermaid")
  endif()
  execute_process(COMMAND "${PROTOGEN_EXECUTABLE}" --list-outputs "${spec}" -o "${out}"
                          --handlers-dir "${handlers_dir}" --emit "${generated},handlers"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE outputs ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "protogen_generate(${target}): ${err}")
  endif()
  string(REPLACE "\n" ";" outputs "${outputs}")
  list(POP_BACK outputs handlers)
  list(GET outputs 0 header)
  get_filename_component(name "${header}" NAME_WE)

  # The depfile lists the generator's sources and templates: changing any of
  # them regenerates. --handlers-dir lets protogen report handlers the spec no
  # longer matches.
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND "${PROTOGEN_EXECUTABLE}" "${spec}" --emit "${generated}" -o "${out}"
            --handlers-dir "${handlers_dir}" -M "${out}/${name}.d"
    # protogen leaves unchanged files alone; touch them so the rule is satisfied.
    COMMAND "${CMAKE_COMMAND}" -E touch ${outputs}
    DEPENDS "${spec}" "${PROTOGEN_EXECUTABLE}"
    DEPFILE "${out}/${name}.d"
    COMMENT "protogen ${arg_SPEC}"
    VERBATIM)
  target_sources(${target} PRIVATE ${outputs})
  if(arg_DIAGRAMS)
    find_program(PROTOGEN_DOT dot)
    if(PROTOGEN_DOT)
      add_custom_command(
        OUTPUT "${out}/${name}.svg"
        COMMAND "${PROTOGEN_DOT}" -Tsvg "${out}/${name}.dot" -o "${out}/${name}.svg"
        DEPENDS "${out}/${name}.dot"
        COMMENT "dot ${name}.svg"
        VERBATIM)
      target_sources(${target} PRIVATE "${out}/${name}.svg")
    endif()
  endif()
  target_include_directories(${target} PRIVATE "${out}")
  target_link_libraries(${target} PRIVATE ${runtime})

  if(NOT arg_NO_HANDLERS)
    if(NOT EXISTS "${handlers}")
      execute_process(COMMAND "${PROTOGEN_EXECUTABLE}" "${spec}" --emit handlers
                              --handlers-dir "${handlers_dir}"
                      RESULT_VARIABLE rc ERROR_VARIABLE err)
      if(NOT rc EQUAL 0)
        message(FATAL_ERROR "protogen_generate(${target}): ${err}")
      endif()
      message(STATUS "protogen: wrote the handler skeleton ${handlers}: fill it in")
    endif()
    target_sources(${target} PRIVATE "${handlers}")
  endif()
endfunction()
