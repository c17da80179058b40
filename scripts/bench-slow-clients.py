#!/usr/bin/env python3
"""Slow clients (slowloris) against a running `garmentnet serve`: N connections from attacker
addresses send a request head one byte per second, while a client on another address sends a
normal request every few seconds. Prints how many normal requests were answered and how fast, and
what the slow connections got. Usage: bench-slow-clients.py PORT [CONNECTIONS] [ADDRESSES] [SECONDS]
(the attack spreads CONNECTIONS over ADDRESSES addresses 127.0.0.10, .11, ...)."""
import socket, sys, threading, time

port = int(sys.argv[1])
connections = int(sys.argv[2]) if len(sys.argv) > 2 else 200
addresses = int(sys.argv[3]) if len(sys.argv) > 3 else 1
seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 30
head = b"POST /v1/models/garments:predict HTTP/1.1\r\nHost: a\r\nX-Padding: " + b"a" * 4000
outcomes = {}
lock = threading.Lock()

def slow(index):
    s = socket.socket()
    s.bind((f"127.0.0.{10 + index % addresses}", 0))
    s.settimeout(1.0)
    outcome = "held to the end"
    try:
        s.connect(("127.0.0.1", port))
        for byte in head:
            s.sendall(bytes([byte]))
            try:
                answer = s.recv(4096)
                outcome = answer.split(b" ")[1].decode() if answer else "closed"
                break
            except socket.timeout:
                pass
            if time.time() > end:
                break
    except OSError as error:
        outcome = type(error).__name__
    with lock:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    s.close()

end = time.time() + seconds
threads = [threading.Thread(target=slow, args=(i,)) for i in range(connections)]
for t in threads:
    t.start()
time.sleep(2)
latencies, failed = [], 0
while time.time() < end - 3:
    start = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=15, source_address=("127.0.0.2", 0))
        s.sendall(b"GET /v1/models/garments HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        ok = s.recv(4096).startswith(b"HTTP/1.1 200")
        s.close()
    except OSError:
        ok = False
    if ok:
        latencies.append(time.time() - start)
    else:
        failed += 1
    time.sleep(2)
for t in threads:
    t.join()
latencies.sort()
print(f"{connections} slow connections from {addresses} address(es), {seconds:.0f} s")
print(f"  normal requests from another address: {len(latencies)} answered, {failed} not; "
      f"latency median {latencies[len(latencies) // 2] if latencies else float('nan'):.3f} s, "
      f"max {latencies[-1] if latencies else float('nan'):.3f} s")
print(f"  slow connections: {dict(sorted(outcomes.items()))}")
