#!/usr/bin/env python3
"""Raw wire client for agentd's framed protocol (integration tests only).

vmletctl always sends well-formed requests; the rejection tests need a
client that can send anything: a bare length header, unknown fields,
garbage, bursts on one connection, connections that never speak. This
speaks the framing (4-byte big-endian length + protobuf) and decodes just
enough of AgentResponse (which oneof member; Error.code / Error.message)
to print one line per event. It is independent of the C code on purpose.

usage: lib-wire.py (--unix PATH | --tcp HOST:PORT | --tls HOST:PORT --ca F
                    --cert F --key F) [--timeout S] STEP...
steps:
  raw:HEX          send these bytes as they are
  frame:HEX        send a 4-byte length followed by these bytes
  req:NAME         send one framed AgentRequest (node_info, node_stats,
                   tenant_list)
  read             read one frame (or EOF / reset / timeout) and print it
  drain            read frames until EOF / reset / timeout, print each
  burst:NAME:N     N times: send req:NAME, read the answer (stops at EOF)
  hold:N:SECONDS   open N more connections of the same kind (no bytes
                   sent), print "held N", keep them for SECONDS
output lines: "frame len=N <member>" or "frame len=N error code=C
message=...", "eof", "reset", "timeout", "connect-failed <why>",
"sent N". Exit 0 unless the arguments are bad.
"""
import socket
import ssl
import struct
import sys
import time

RESPONSE_MEMBERS = {1: "error", 2: "reconcile", 3: "node_info", 4: "node_stats",
                    5: "tenant_list", 6: "instance_list", 7: "wake_instance"}
# AgentRequest oneof field numbers; every one of these carries an empty
# sub-message (tag, length 0).
REQUESTS = {"node_info": 2, "node_stats": 3, "tenant_list": 4}


def varint(buf, i):
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf):
    """Yield (field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            v = buf[i:i + n]
            if len(v) != n:
                raise ValueError("truncated length-delimited field")
            i += n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("bad wire type %d" % wt)
        yield num, wt, v


def describe(payload):
    try:
        top = list(fields(payload))
    except ValueError as e:
        return "undecodable (%s)" % e
    if len(top) != 1 or top[0][1] != 2:
        return "undecodable (expected one oneof member, got %d fields)" % len(top)
    num, _, body = top[0]
    name = RESPONSE_MEMBERS.get(num, "unknown-field-%d" % num)
    if name != "error":
        return name
    code, msg = 0, b""
    try:
        for n, wt, v in fields(body):
            if n == 1 and wt == 0:
                code = v
            elif n == 2 and wt == 2:
                msg = v
    except ValueError as e:
        return "error undecodable (%s)" % e
    return "error code=%d message=%r" % (code, msg.decode("utf-8", "replace"))


def request(name):
    payload = bytes([REQUESTS[name] << 3 | 2, 0])
    return struct.pack(">I", len(payload)) + payload


class Conn:
    def __init__(self, args):
        self.args = args
        self.sock = None

    def open(self):
        a = self.args
        if a["kind"] == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(a["timeout"])
            s.connect(a["addr"])
            return s
        host, port = a["addr"].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=a["timeout"])
        if a["kind"] == "tls":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.check_hostname = False  # the server's name is not what these tests are about
            ctx.load_verify_locations(a["ca"])
            ctx.load_cert_chain(a["cert"], a["key"])
            s = ctx.wrap_socket(s, server_hostname=host)
        return s

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                return None if not out else out
            out += chunk
        return out

    def read_frame(self):
        """Returns (line, more): more is False after EOF/reset/timeout."""
        try:
            hdr = self.recv_exact(4)
            if hdr is None:
                return "eof", False
            if len(hdr) < 4:
                return "eof (after %d stray bytes)" % len(hdr), False
            (n,) = struct.unpack(">I", hdr)
            if n > 64 << 20:
                return "bogus length %d" % n, False
            body = self.recv_exact(n)
            if body is None or len(body) < n:
                return "eof (inside a frame of %d bytes)" % n, False
            return "frame len=%d %s" % (n, describe(body)), True
        except (socket.timeout, TimeoutError):
            return "timeout", False
        except (ConnectionResetError, BrokenPipeError):
            return "reset", False
        except ssl.SSLError as e:
            return "reset (tls: %s)" % e.reason, False
        except OSError as e:
            return "reset (%s)" % e, False

    def send(self, data):
        try:
            self.sock.sendall(data)
            print("sent %d" % len(data), flush=True)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            print("send-failed %s" % e, flush=True)
            return False


def run(args, steps):
    c = Conn(args)
    try:
        c.sock = c.open()
    except (OSError, ssl.SSLError) as e:
        print("connect-failed %s" % e, flush=True)
        return
    for step in steps:
        kind, _, rest = step.partition(":")
        if kind == "raw":
            if not c.send(bytes.fromhex(rest)):
                return
        elif kind == "frame":
            p = bytes.fromhex(rest)
            if not c.send(struct.pack(">I", len(p)) + p):
                return
        elif kind == "req":
            if not c.send(request(rest)):
                return
        elif kind == "read":
            line, _ = c.read_frame()
            print(line, flush=True)
        elif kind == "drain":
            while True:
                line, more = c.read_frame()
                print(line, flush=True)
                if not more:
                    break
        elif kind == "burst":
            name, n = rest.split(":")
            for _ in range(int(n)):
                try:
                    c.sock.sendall(request(name))
                except (OSError, ssl.SSLError) as e:
                    print("send-failed %s" % e, flush=True)
                    return
                line, more = c.read_frame()
                print(line, flush=True)
                if not more:
                    return
        elif kind == "hold":
            n, secs = rest.split(":")
            held = []
            for _ in range(int(n)):
                try:
                    held.append(c.open())
                except (OSError, ssl.SSLError) as e:
                    print("connect-failed %s" % e, flush=True)
                    break
            print("held %d" % (len(held) + 1), flush=True)
            # The caller kills us when it is done; SECONDS bounds the wait.
            time.sleep(float(secs))
            for s in held:
                s.close()
        else:
            raise SystemExit("unknown step %r" % step)
    c.sock.close()


def main(argv):
    args = {"timeout": 10.0}
    steps = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--unix", "--tcp", "--tls"):
            args["kind"], args["addr"] = a[2:], argv[i + 1]
            i += 2
        elif a in ("--ca", "--cert", "--key", "--timeout"):
            args[a[2:]] = float(argv[i + 1]) if a == "--timeout" else argv[i + 1]
            i += 2
        else:
            steps.append(a)
            i += 1
    if "kind" not in args or (args["kind"] == "tls" and not all(k in args for k in ("ca", "cert", "key"))):
        raise SystemExit(__doc__)
    run(args, steps)


if __name__ == "__main__":
    main(sys.argv[1:])
