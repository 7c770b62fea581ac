#pragma once
// Versions a plugin is checked against before the host imports anything from it.

#define REEL_VERSION_STRING "0.1.0"

// The plugin ABI: the layout of every type in this directory. Bump the major number on any
// change that breaks a compiled plugin; bump the minor number when adding something a plugin may
// use (a host refuses a plugin that needs a newer minor than it has).
#define REEL_ABI_MAJOR 6
#define REEL_ABI_MINOR 0
