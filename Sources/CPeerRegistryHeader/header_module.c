/* Exists so SwiftPM builds this module: the module is include/peer_registry.h. */
