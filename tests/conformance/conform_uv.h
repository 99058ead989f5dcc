/* The libuv host of conform_server (conform_uv.c). */
#ifndef CONFORM_UV_H
#define CONFORM_UV_H

#include "protogen/protocol.h"

/* Serves factory's protocol on 127.0.0.1 (a free port) or on unix_path, on
 * a libuv loop, until SIGTERM. The exit status. */
int conform_serve_libuv(pg_protocol_factory factory, const char *unix_path);

#endif
