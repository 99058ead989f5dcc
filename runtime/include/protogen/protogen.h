/* protogen runtime: the one header to include. */
#ifndef PROTOGEN_PROTOGEN_H
#define PROTOGEN_PROTOGEN_H

#include "protogen/version.h"
#include "protogen/loop.h"
#include "protogen/protocol.h"
#include "protogen/transport.h"
#include "protogen/core.h"
#include "protogen/framing.h"
#include "protogen/machine.h"
#include "protogen/manual.h"
#include "protogen/server.h"
#include "protogen/tcp.h"
#include "protogen/unix.h"
#include "protogen/pipe.h"
#include "protogen/subprocess.h"
#include "protogen/stream.h"
#include "protogen/datagram.h"
#include "protogen/udp.h"

#endif
