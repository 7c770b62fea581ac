# Finds every external dependency once, for the whole tree.
find_package(Torch REQUIRED)
find_package(TBB REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
find_package(Boost 1.74 REQUIRED)   # Boost.DLL is header-only
find_package(CLI11 REQUIRED)

# A CUDA build of libtorch ships the torch_cuda target (and c10_cuda); the CPU build does not.
if(TARGET torch_cuda OR TARGET c10_cuda)
  set(REEL_WITH_CUDA ON)
else()
  set(REEL_WITH_CUDA OFF)
endif()
message(STATUS "reel: libtorch ${Torch_VERSION}, CUDA support: ${REEL_WITH_CUDA}")

if(REEL_BUILD_FFMPEG_PLUGINS)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(FFMPEG IMPORTED_TARGET libavformat libavcodec libswscale libavutil)
  if(NOT FFMPEG_FOUND)
    message(WARNING "reel: FFmpeg development files not found; the FFmpeg plugins are skipped")
    set(REEL_BUILD_FFMPEG_PLUGINS OFF)
  endif()
endif()

# libsentencepiece: the T5 tokenizer of CogVideoX. Without it (the GPU configuration may lack it)
# the CogVideoX components are skipped.
find_package(PkgConfig)
if(PkgConfig_FOUND)
  pkg_check_modules(SENTENCEPIECE IMPORTED_TARGET sentencepiece)
endif()
if(SENTENCEPIECE_FOUND)
  set(REEL_WITH_COGVIDEOX ON)
else()
  message(WARNING "reel: libsentencepiece not found; the CogVideoX components are skipped")
  set(REEL_WITH_COGVIDEOX OFF)
endif()
