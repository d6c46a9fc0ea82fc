#!/usr/bin/env python3
"""bench_server.py - nimreward-server's own overhead, measured: requests/s and
p50/p99 latency at 1, 8 and 64 concurrent clients on loopback, against calling
the library directly with the same conversations, so the overhead is a ratio.

    scripts/bench_server.py [--model DIR] [--seconds S] [--clients 1,8,64] [--threads N] [-- SERVER FLAGS...]

The clients are closed loops (each sends its next request when the last is
answered) on keep-alive connections, written on raw sockets so the client's
own cost stays small next to the server's. The direct baselines, run after
the server has stopped (so the two never share the CPU):
  - "direct, N threads": N threads each calling rm_score_messages in a loop
    (what an application calling the library from N threads gets);
  - "direct, batch of N": one thread calling rm_score_batch on N conversations
    (the library's own batching, which the server's queue feeds).
The server's CPU seconds per request (from /proc) are printed beside the
library's, since on a shared machine CPU time is steadier than wall time.
Prints a Markdown table (docs/performance.md keeps the results).
"""
import argparse
import ctypes
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
DEFAULT_MODEL = os.path.join(ROOT, "..", "shared", "fixtures", "models", "tiny-llama3-seqcls")
TICKS = os.sysconf("SC_CLK_TCK")

# Conversations of the size a reward model usually sees in RLHF (a prompt and a response, ~40-80 tokens here).
CONVERSATIONS = [
    [{"role": "user", "content": "I am going to Paris, what should I see?"},
     {"role": "assistant", "content": "Ah, Paris, the City of Light! There are so many amazing things to see and do "
                                      "in this beautiful city ..."}],
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "user", "content": "Write a haiku about the sea."},
     {"role": "assistant", "content": "Grey waves fold and break / salt wind carries gull voices / the tide keeps its time"}],
    [{"role": "user", "content": "Is 17 a prime number? Explain briefly."},
     {"role": "assistant", "content": "Yes. 17 has no divisors other than 1 and itself: 2, 3 and 4 do not divide it, "
                                      "and 5 squared is already larger than 17."}],
]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# ---------------------------------------------------------------- the server, through raw HTTP/1.1

def http_request(body, model):
    payload = json.dumps({"model": model, "messages": body}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)


def read_response(sock, buf):
    """Reads one response; returns (status, the rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head[9:12])
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return status, rest[length:]


def run_clients(port, requests, n_clients, seconds):
    """Closed-loop clients for `seconds`; returns (latencies, errors, wall seconds)."""
    lat, errors, lock = [], [0], threading.Lock()
    start_at = time.perf_counter() + 0.2
    stop_at = start_at + seconds

    def client(k):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mine, buf, i = [], b"", k
        while time.perf_counter() < start_at:
            time.sleep(0.001)
        while time.perf_counter() < stop_at:
            req = requests[i % len(requests)]
            i += 1
            t = time.perf_counter()
            sock.sendall(req)
            status, buf = read_response(sock, buf)
            if status != 200:
                with lock:
                    errors[0] += 1
            mine.append(time.perf_counter() - t)
        sock.close()
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, errors[0], seconds


def batch_totals(port):
    """(batches, requests in them) from /v1/metrics."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /v1/metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    text = buf.decode(errors="replace")
    count = float(re.search(r"nimreward_batch_size_count (\S+)", text).group(1))
    total = float(re.search(r"nimreward_batch_size_sum (\S+)", text).group(1))
    return count, total


def bench_server(args):
    cmd = [os.path.join(BUILD, "bin", "nimreward-server"), "--model", args.model, "--port", "0",
           "--served-model-name", "bench", "--threads", str(args.threads)] + args.server_flags
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline().decode()
    m = re.search(r"http://[^ ]*:(\d+)/v1", line)
    if not m:
        proc.kill()
        sys.exit(f"the server did not start: {proc.stderr.read().decode()[-500:]}")
    port = int(m.group(1))
    print(line.strip(), file=sys.stderr)
    requests = [http_request(c, "bench") for c in CONVERSATIONS]
    run_clients(port, requests, 8, 1.0)          # warm-up
    rows = []
    for n in args.clients:
        cpu0, (b0, r0), mine0 = cpu_seconds(proc.pid), batch_totals(port), time.process_time()
        lat, errors, wall = run_clients(port, requests, n, args.seconds)
        cpu, (b1, r1) = cpu_seconds(proc.pid) - cpu0, batch_totals(port)
        client_cpu = (time.process_time() - mine0) / max(1, len(lat))
        per_batch = (r1 - r0) / max(1, b1 - b0)
        rows.append((n, len(lat) / wall, percentile(lat, 50), percentile(lat, 99), cpu / max(1, len(lat)), errors,
                     per_batch, client_cpu))
        print(f"server {n:3d} clients: {len(lat) / wall:8.0f} req/s  p50 {percentile(lat, 50) * 1e3:7.2f} ms  "
              f"p99 {percentile(lat, 99) * 1e3:7.2f} ms  cpu {cpu / max(1, len(lat)) * 1e6:6.0f} us/req  "
              f"{per_batch:5.1f} per batch  client cpu {client_cpu * 1e6:4.0f} us/req  errors {errors}", file=sys.stderr)
    proc.terminate()
    proc.wait(timeout=60)
    return rows


# ---------------------------------------------------------------- the library, directly

class Message(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


class Item(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("messages", ctypes.POINTER(Message)), ("n_messages", ctypes.c_size_t),
                ("principles", ctypes.c_void_p), ("n_principles", ctypes.c_size_t)]


def bench_direct(args):
    lib = ctypes.CDLL(os.path.join(BUILD, "lib", "libnimreward.so"))
    lib.rm_load.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p,
                            ctypes.c_size_t]
    lib.rm_score_messages.argtypes = [ctypes.c_void_p, ctypes.POINTER(Message), ctypes.c_size_t,
                                      ctypes.POINTER(ctypes.c_void_p)]
    lib.rm_score_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(Item), ctypes.c_size_t,
                                   ctypes.POINTER(ctypes.c_void_p)]
    lib.rm_scores_free.argtypes = [ctypes.c_void_p]
    lib.rm_free.argtypes = [ctypes.c_void_p]
    # rm_params: struct_size, device, n_threads, ...; rm_params_init fills the rest.
    params = (ctypes.c_char * 512)()
    lib.rm_params_init(params)
    ctypes.c_int.from_buffer(params, ctypes.sizeof(ctypes.c_size_t) + ctypes.sizeof(ctypes.c_int)).value = args.threads
    model, err = ctypes.c_void_p(), ctypes.create_string_buffer(1024)
    if lib.rm_load(args.model.encode(), params, ctypes.byref(model), err, len(err)) != 0:
        sys.exit(f"rm_load: {err.value.decode()}")
    convs = []
    for c in CONVERSATIONS:
        arr = (Message * len(c))(*[Message(ctypes.sizeof(Message), m["role"].encode(), m["content"].encode()) for m in c])
        convs.append(arr)

    def threads(n, seconds):
        lat, lock = [], threading.Lock()
        stop_at = time.perf_counter() + seconds

        def worker(k):
            out, mine, i = ctypes.c_void_p(), [], k
            while time.perf_counter() < stop_at:
                arr = convs[i % len(convs)]
                i += 1
                t = time.perf_counter()
                lib.rm_score_messages(model, arr, len(arr), ctypes.byref(out))
                lib.rm_scores_free(out)
                mine.append(time.perf_counter() - t)
            with lock:
                lat.extend(mine)
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return lat

    def batch(n, seconds):
        items = (Item * n)(*[Item(ctypes.sizeof(Item), convs[k % len(convs)], len(convs[k % len(convs)]), None, 0)
                             for k in range(n)])
        out = (ctypes.c_void_p * n)()
        lat, stop_at = [], time.perf_counter() + seconds
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            lib.rm_score_batch(model, items, n, out)
            for k in range(n):
                lib.rm_scores_free(out[k])
            lat.append(time.perf_counter() - t)
        return lat, len(lat) * n

    threads(2, 0.5)   # warm-up
    rows = []
    for n in args.clients:
        c0 = time.process_time()
        lat = threads(n, args.seconds)
        cpu = time.process_time() - c0
        rows.append(("threads", n, len(lat) / args.seconds, percentile(lat, 50), percentile(lat, 99), cpu / len(lat)))
        c0 = time.process_time()
        blat, items = batch(n, args.seconds)
        cpu = time.process_time() - c0
        rows.append(("batch", n, items / args.seconds, percentile(blat, 50), percentile(blat, 99), cpu / items))
        for r in rows[-2:]:
            print(f"direct {r[0]:7s} {n:3d}: {r[2]:8.0f} req/s  p50 {r[3] * 1e3:7.2f} ms  p99 {r[4] * 1e3:7.2f} ms  "
                  f"cpu {r[5] * 1e6:6.0f} us/req", file=sys.stderr)
    lib.rm_free(model)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", default="1,8,64")
    ap.add_argument("--threads", type=int, default=0, help="engine threads (0: all cores), the same on both sides")
    ap.add_argument("server_flags", nargs="*", help="more nimreward-server flags, after --")
    args = ap.parse_args()
    args.clients = [int(x) for x in args.clients.split(",")]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"load average before: {' '.join(load)}; {os.cpu_count()} CPUs; model {args.model}", file=sys.stderr)
    server = bench_server(args)
    direct = bench_direct(args)
    print("\n| clients | server req/s | p50 ms | p99 ms | per batch | CPU us/req (client) | direct threads req/s | "
          "p50 ms | p99 ms | CPU us/req | direct batch req/s | p50 ms | CPU us/req | server / threads | server / batch |")
    print("| --- " * 15 + "|")
    for (n, rps, p50, p99, cpu, _, per_batch, ccpu), t, b in zip(server, direct[0::2], direct[1::2]):
        print(f"| {n} | {rps:.0f} | {p50 * 1e3:.2f} | {p99 * 1e3:.2f} | {per_batch:.1f} | {cpu * 1e6:.0f} ({ccpu * 1e6:.0f}) | "
              f"{t[2]:.0f} | {t[3] * 1e3:.2f} | {t[4] * 1e3:.2f} | {t[5] * 1e6:.0f} | "
              f"{b[2]:.0f} | {b[3] * 1e3:.2f} | {b[5] * 1e6:.0f} | {rps / t[2]:.2f} | {rps / b[2]:.2f} |")


if __name__ == "__main__":
    main()
