# find_package(reel) for out-of-tree plugins, from the build tree (-Dreel_DIR=<build>) or an
# install (<prefix>/lib/cmake/reel). Both provide reel::core and reel_add_plugin().
include(CMakePackageConfigHelpers)

install(TARGETS reel_base reel_core EXPORT reelTargets LIBRARY DESTINATION lib)
install(DIRECTORY core/include/reel DESTINATION include)
install(EXPORT reelTargets NAMESPACE reel:: DESTINATION lib/cmake/reel)
install(FILES cmake/ReelPlugin.cmake DESTINATION lib/cmake/reel)

export(EXPORT reelTargets NAMESPACE reel:: FILE ${PROJECT_BINARY_DIR}/reelTargets.cmake)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/reelConfigVersion.cmake COMPATIBILITY SameMinorVersion)

# Two configs that differ only in where ReelPlugin.cmake is: the source tree for the build
# tree's config, beside the config for an install. By default an out-of-tree plugin is built
# into its own build folder.
set(config_body "include(CMakeFindDependencyMacro)
find_dependency(Torch)
find_dependency(nlohmann_json)
include(\${CMAKE_CURRENT_LIST_DIR}/reelTargets.cmake)
if(NOT DEFINED REEL_PLUGIN_OUTPUT_DIR)
  set(REEL_PLUGIN_OUTPUT_DIR \${CMAKE_BINARY_DIR})
endif()
")
file(WRITE ${PROJECT_BINARY_DIR}/reelConfig.cmake "${config_body}include(${PROJECT_SOURCE_DIR}/cmake/ReelPlugin.cmake)\n")
file(WRITE ${PROJECT_BINARY_DIR}/reelConfig.install.cmake "${config_body}include(\${CMAKE_CURRENT_LIST_DIR}/ReelPlugin.cmake)\n")
install(FILES ${PROJECT_BINARY_DIR}/reelConfig.install.cmake DESTINATION lib/cmake/reel RENAME reelConfig.cmake)
install(FILES ${PROJECT_BINARY_DIR}/reelConfigVersion.cmake DESTINATION lib/cmake/reel)
