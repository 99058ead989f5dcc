/* protogen runtime version and ABI.
 *
 * The one place the version is kept: CMake reads PG_VERSION_MAJOR, _MINOR and
 * _PATCH from this file for project(VERSION) (cmake/version.cmake), and the
 * generator reads them and PG_ABI_VERSION at run time (generator/protogen/version.py).
 * Change them here only; tests/generator/test_version.py checks that all agree.
 *
 * Generated headers compare PG_ABI_VERSION with the ABI they were generated for
 * and stop the build with #error on a mismatch, so stale generated code never
 * links against a runtime whose structures or callback tables changed. */
#ifndef PROTOGEN_VERSION_H
#define PROTOGEN_VERSION_H

#define PG_VERSION_MAJOR 0
#define PG_VERSION_MINOR 1
#define PG_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH", made from the three numbers above. */
#define PG__VERSION_STR(n) #n
#define PG__VERSION_JOIN(a, b, c) PG__VERSION_STR(a) "." PG__VERSION_STR(b) "." PG__VERSION_STR(c)
#define PG_VERSION_STRING PG__VERSION_JOIN(PG_VERSION_MAJOR, PG_VERSION_MINOR, PG_VERSION_PATCH)

/* Bumped whenever a change to the public headers breaks generated code. */
#define PG_ABI_VERSION 3

#endif
