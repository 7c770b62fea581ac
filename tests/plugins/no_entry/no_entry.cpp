// A shared library that is not a reel plugin: no handshake, no register function.
extern "C" __attribute__((visibility("default"))) int not_a_reel_plugin() { return 1; }
