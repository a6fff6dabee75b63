configure_file(${CMAKE_CURRENT_LIST_DIR}/version.h.in
  ${PROJECT_BINARY_DIR}/include/dataproxy/version.h @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/include/dataproxy/version.h DESTINATION include/dataproxy)

# One precompiled torch/torch.h shared by the targets that use LibTorch: parsing it costs ~15 s
# per file. Torch-free targets neither link torch nor reuse this header.
if(DATAPROXY_WITH_TORCH)
  add_library(dataproxy_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/pch.cpp)
  target_link_libraries(dataproxy_pch PUBLIC torch nlohmann_json::nlohmann_json)
  if(DATAPROXY_USE_PCH)
    target_precompile_headers(dataproxy_pch PRIVATE <torch/torch.h> <nlohmann/json.hpp>)
  endif()
endif()

function(dataproxy_use_pch target)
  if(DATAPROXY_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM dataproxy_pch)
  endif()
endfunction()

# dataproxy_component(NAME [TORCH] SOURCES ... DEPENDS ...): one static library per pipeline
# stage. TORCH: the stage uses LibTorch (links it, reuses the torch precompiled header).
function(dataproxy_component name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPENDS" ${ARGN})
  add_library(dataproxy_${name} STATIC ${ARG_SOURCES})
  add_library(dataproxy::${name} ALIAS dataproxy_${name})
  target_include_directories(dataproxy_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/plugin/include>
    $<BUILD_INTERFACE:${PROJECT_BINARY_DIR}/include> $<INSTALL_INTERFACE:include>
    PRIVATE ${PROJECT_SOURCE_DIR}/plugin/src)
  target_link_libraries(dataproxy_${name} PUBLIC ${ARG_DEPENDS})
  set_target_properties(dataproxy_${name} PROPERTIES
    EXPORT_NAME ${name})
  target_compile_options(dataproxy_${name} PRIVATE -Wall -Wextra)
  if(ARG_TORCH)
    target_link_libraries(dataproxy_${name} PUBLIC torch)
    dataproxy_use_pch(dataproxy_${name})
  endif()
  install(TARGETS dataproxy_${name} EXPORT dataproxyTargets ARCHIVE DESTINATION lib)
endfunction()

# dataproxy_test(NAME [TORCH] SOURCES ... DEPENDS ...): a GoogleTest executable registered with
# CTest. TORCH: it uses LibTorch (reuses the torch precompiled header).
function(dataproxy_test name)
  cmake_parse_arguments(ARG "TORCH" "" "SOURCES;DEPENDS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPENDS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/cpp
    ${PROJECT_SOURCE_DIR}/plugin/src)
  if(ARG_TORCH)
    dataproxy_use_pch(${name})
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${ARG_LABELS}"
    ENVIRONMENT "DATAPROXY_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
