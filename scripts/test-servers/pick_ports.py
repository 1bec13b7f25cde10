#!/usr/bin/env python3
"""Print free TCP ports on 127.0.0.1, chosen by the kernel (bind to port 0), on one line.

Usage: pick_ports.py PAIRS SINGLES
  PAIRS    number of (port, port + 10000) pairs: `weed mini` derives some gRPC addresses as
           HTTP port + 10000 even when told otherwise (its embedded worker dials admin port +
           10000), so each SeaweedFS component gets a pair whose two ports are both free.
  SINGLES  number of single ports (DynamoDB Local).

Every socket stays bound until all ports are chosen, so the ports printed are distinct. A port can
still be taken by someone else between this script and the server's own bind; start.sh retries
with new ports when a server fails with "address already in use".
"""
import socket
import sys

GRPC_OFFSET = 10000


def main() -> int:
    pairs, singles = int(sys.argv[1]), int(sys.argv[2])
    held = []  # bound sockets, kept open until the end so no port is handed out twice

    def bind(port: int):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            return None
        held.append(s)
        return s.getsockname()[1]

    ports = []
    for _ in range(1000):  # bounded: each try holds one more port, so this always ends
        if len(ports) == 2 * pairs:
            break
        p = bind(0)
        if p is not None and p + GRPC_OFFSET <= 65535 and bind(p + GRPC_OFFSET) is not None:
            ports += [p, p + GRPC_OFFSET]
    else:
        print("pick_ports.py: could not find free port pairs", file=sys.stderr)
        return 1
    for _ in range(singles):
        ports.append(bind(0))
    print(*ports)
    for s in held:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
