# reel_add_plugin(NAME sources...): a plugin library that lands where bin/reel looks for plugins.
# Plugins see only the SDK (reel::core); they are MODULE libraries, loaded by the host at start-up.
function(reel_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE reel::core)
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    LIBRARY_OUTPUT_DIRECTORY ${REEL_PLUGIN_OUTPUT_DIR}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
endfunction()
