/* protogen runtime version and ABI.
 *
 * Generated headers compare PG_ABI_VERSION with the ABI they were generated for
 * and stop the build with #error on a mismatch, so stale generated code never
 * links against a runtime whose structures or callback tables changed. */
#ifndef PROTOGEN_VERSION_H
#define PROTOGEN_VERSION_H

#define PG_VERSION_MAJOR 0
#define PG_VERSION_MINOR 1
#define PG_VERSION_PATCH 0
#define PG_VERSION_STRING "0.1.0"

/* Bumped whenever a change to the public headers breaks generated code. */
#define PG_ABI_VERSION 1

#endif
