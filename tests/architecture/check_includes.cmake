# The include graph of the library points down only (DESIGN.md: "an arrow only points down").
# Run by ctest as architecture/includes_point_down:
#   cmake -DSOURCE_DIR=<repo> -P tests/architecture/check_includes.cmake
# and, on tests/architecture/planted/ (core/ including kernels/), as
# architecture/planted_upward_include_is_caught, which must fail.
# Every #include "folder/..." in a layer's sources must name a layer that layer may use, by the
# rules of cmake/layer_rules.cmake (the same rules the layer libraries are built with).
# Known exceptions are listed below with their reason; an include outside the rules that is not
# listed fails the check, naming the file, the line and the layer it reaches.
include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/layer_rules.cmake)
# file:included-header pairs that break the rules today, each with the issue that removes it.
set(known_exceptions)

set(violations "")
set(checked 0)
foreach(layer ${MOESEG_LAYERS})
  file(GLOB_RECURSE files "${SOURCE_DIR}/${layer}/*.h" "${SOURCE_DIR}/${layer}/*.cpp" "${SOURCE_DIR}/${layer}/*.cu"
       "${SOURCE_DIR}/${layer}/*.cuh")
  foreach(f ${files})
    file(RELATIVE_PATH rel "${SOURCE_DIR}" "${f}")
    if(rel MATCHES "^tools/fixtures/" OR rel MATCHES "^bench/kernel_lab/")
      continue()   # scripts, and the kernel lab (its own program over kernels/)
    endif()
    file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]+\"[a-z_]+/")
    foreach(line ${lines})
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]+\"([^\"]+)\".*" "\\1" header "${line}")
      string(REGEX REPLACE "/.*" "" target "${header}")
      math(EXPR checked "${checked} + 1")
      list(FIND MOESEG_LAYER_USES_${layer} "${target}" ok)
      if(ok EQUAL -1 AND NOT target STREQUAL "stb" AND NOT target STREQUAL "nlohmann" AND NOT target STREQUAL "doctest"
)
        list(FIND known_exceptions "${rel}:${header}" known)
        if(known EQUAL -1)
          list(APPEND violations "${rel}: #include \"${header}\" (${layer} may include only: ${MOESEG_LAYER_USES_${layer}})")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()
list(LENGTH known_exceptions n_known)
message(STATUS "include graph: ${checked} project includes checked, ${n_known} known exception(s)")
if(violations)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "includes that point up or sideways:\n  ${text}")
endif()
if(NOT DEFINED MIN_INCLUDES)
  set(MIN_INCLUDES 500)
endif()
if(checked LESS MIN_INCLUDES)
  message(FATAL_ERROR "include graph: only ${checked} includes found under ${SOURCE_DIR}: wrong source dir?")
endif()
message(STATUS "include graph: every include points down")
