# find_package(reel) for out-of-tree plugins, from the build tree (-Dreel_DIR=<build>) or an
# install (<prefix>/lib/cmake/reel). Both provide reel::core and reel_add_plugin().
include(CMakePackageConfigHelpers)

install(TARGETS reel_core EXPORT reelTargets LIBRARY DESTINATION lib)
install(DIRECTORY core/include/reel DESTINATION include)
install(EXPORT reelTargets NAMESPACE reel:: DESTINATION lib/cmake/reel)
install(FILES cmake/ReelPlugin.cmake DESTINATION lib/cmake/reel)

export(EXPORT reelTargets NAMESPACE reel:: FILE ${PROJECT_BINARY_DIR}/reelTargets.cmake)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/reelConfigVersion.cmake COMPATIBILITY SameMinorVersion)

# The build tree's config: plugins land in its own plugin folder only if asked; by default an
# out-of-tree plugin is built into its own build folder.
file(WRITE ${PROJECT_BINARY_DIR}/reelConfig.cmake "
include(CMakeFindDependencyMacro)
find_dependency(Torch)
find_dependency(nlohmann_json)
include(\${CMAKE_CURRENT_LIST_DIR}/reelTargets.cmake)
if(NOT DEFINED REEL_PLUGIN_OUTPUT_DIR)
  set(REEL_PLUGIN_OUTPUT_DIR \${CMAKE_BINARY_DIR})
endif()
include(${PROJECT_SOURCE_DIR}/cmake/ReelPlugin.cmake)
")
file(WRITE ${PROJECT_BINARY_DIR}/reelConfig.install.cmake "
include(CMakeFindDependencyMacro)
find_dependency(Torch)
find_dependency(nlohmann_json)
include(\${CMAKE_CURRENT_LIST_DIR}/reelTargets.cmake)
if(NOT DEFINED REEL_PLUGIN_OUTPUT_DIR)
  set(REEL_PLUGIN_OUTPUT_DIR \${CMAKE_BINARY_DIR})
endif()
include(\${CMAKE_CURRENT_LIST_DIR}/ReelPlugin.cmake)
")
install(FILES ${PROJECT_BINARY_DIR}/reelConfig.install.cmake DESTINATION lib/cmake/reel RENAME reelConfig.cmake)
install(FILES ${PROJECT_BINARY_DIR}/reelConfigVersion.cmake DESTINATION lib/cmake/reel)
