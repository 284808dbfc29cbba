#!/usr/bin/env python3
"""pos-consumer.py SOCKET STATE [--no-ack] - an example [forward] socket consumer
for vinr-webhookd (see docs/sinks.md).  Listens on SOCKET, reads outcome lines,
skips any seq it has already handled (the highest seq seen is kept in STATE),
prints the new ones, and acks every line with "<seq>\\n" (socket_ack = true;
give --no-ack with socket_ack = false: then write nothing back)."""
import json, os, socket, sys

path, state, ack = sys.argv[1], sys.argv[2], "--no-ack" not in sys.argv[3:]
last = int(open(state).read() or 0) if os.path.exists(state) else 0
if os.path.exists(path):
    os.unlink(path)                        # a leftover from an earlier run
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
while True:                                # the daemon reconnects after a loss
    conn, _ = srv.accept()
    with conn, conn.makefile("rb") as lines:
        for line in lines:
            seq = json.loads(line)["seq"]
            if seq > last:                 # at least once: dedupe by seq
                print(line.decode().rstrip("\n"), flush=True)  # handle it here
                with open(state + ".tmp", "w") as f:
                    f.write(str(seq))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(state + ".tmp", state)  # handled, then remembered
                last = seq
            if ack:                        # ack repeats too: the daemon waits
                conn.sendall(b"%d\n" % seq)
