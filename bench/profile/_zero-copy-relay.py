# A relay that copies nothing in user space: each request goes upstream with "Connection: close", and the
# answer is moved socket to socket with splice(2) through a pipe. The cache bench reads the archive through
# it beside the appliance: the most any relay of the archive gives on this machine, below any language's.
# With a rate, it paces each answer to that many bytes a second: the archive behind a link of that speed.
# Usage: python3 _zero-copy-relay.py UPSTREAM_HOST UPSTREAM_PORT [BYTES_PER_SECOND]; prints its port.
import os
import socket
import sys
import threading
import time

upstream_host, upstream_port = sys.argv[1], int(sys.argv[2])
rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0


def relay(client):
    request = b''
    while b'\r\n\r\n' not in request:
        data = client.recv(65536)
        if not data:
            client.close()
            return
        request += data
    head = request.split(b'\r\n\r\n', 1)[0]
    lines = [line for line in head.split(b'\r\n') if not line.lower().startswith((b'connection:', b'host:'))]
    lines.insert(1, b'Host: %s:%d' % (upstream_host.encode(), upstream_port))
    lines.append(b'Connection: close')
    upstream = socket.create_connection((upstream_host, upstream_port))
    upstream.sendall(b'\r\n'.join(lines) + b'\r\n\r\n')
    pipe_out, pipe_in = os.pipe()
    started, sent = time.monotonic(), 0
    try:
        while True:
            moved = os.splice(upstream.fileno(), pipe_in, 1 << 20)
            if moved == 0:
                break
            sent += moved
            while moved:
                moved -= os.splice(pipe_out, client.fileno(), moved)
            if rate > 0:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    finally:
        os.close(pipe_out)
        os.close(pipe_in)
        upstream.close()
        client.shutdown(socket.SHUT_RDWR)
        client.close()


server = socket.socket()
server.bind(('127.0.0.1', 0))
server.listen(16)
print(server.getsockname()[1], flush=True)
while True:
    connection, _ = server.accept()
    threading.Thread(target=relay, args=(connection,), daemon=True).start()
