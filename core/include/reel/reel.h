#pragma once
// Everything a plugin needs: #include <reel/reel.h>
#include <reel/compute.h>
#include <reel/error.h>
#include <reel/frame.h>
#include <reel/host_memory.h>
#include <reel/log.h>
#include <reel/node.h>
#include <reel/output_file.h>
#include <reel/params.h>
#include <reel/plugin.h>
#include <reel/stream.h>
#include <reel/version.h>
#include <reel/weights.h>
