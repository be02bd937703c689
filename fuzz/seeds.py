#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/TARGET/.

Seeds come from the golden transcripts (tests/golden/*.nlt: every request a
client sent, alone and as one datagram per connection) and from frames,
files and arguments shaped like the unit tests' fixtures. Usage:
    fuzz/seeds.py PLUGIN_DIR SMALL_SO
PLUGIN_DIR holds the built plugins; SMALL_SO is a small shared library (the
ELF target's seed beside the real plugin's head).
"""

import hashlib
import json
import os
import socket
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- request: the golden transcripts' requests --------------------------------

def golden_requests():
    """Each transcript's connections, each the requests its client sent."""
    gdir = os.path.join(ROOT, "tests", "golden")
    for name in sorted(os.listdir(gdir)):
        if not name.endswith(".nlt"):
            continue
        conns = []
        with open(os.path.join(gdir, name)) as f:
            for line in f:
                line = line.strip()
                if line == "connection":
                    conns.append([])
                elif line.startswith("> ") and conns:
                    conns[-1].append(bytes.fromhex(line[2:]))
        yield conns


def requests():
    n = stories = activating = 0
    for conns in golden_requests():
        for conn in conns:
            for req in conn:
                put("request", b"\x00" + req)
                n += 1
            whole = b"".join(conn)
            if whole and len(whole) <= 32768:
                put("request", b"\x00" + whole)
                put("request", b"\x01" + whole)
        # Every input starts from an empty registry, and a transcript makes
        # one connection per command: a device is created in one and
        # activated in another. The whole transcript as one datagram (its
        # longest prefix of connections that fits) reaches what only a
        # device made earlier allows: activation, its TAP and mux.
        story = b""
        for conn in conns:
            whole = b"".join(conn)
            if len(story) + len(whole) > 32768:
                break
            story += whole
        if story:
            put("request", b"\x00" + story)
            stories += 1
            cmds = commands(story)
            if CMD_CREATE in cmds and CMD_ACTIVATE in cmds[cmds.index(CMD_CREATE):]:
                activating += 1
    if not activating:
        sys.exit(f"none of the {stories} transcripts creates a device and then "
                 "activates it: the request target would never reach activation")
    return n


CMD_CREATE, CMD_ACTIVATE = 1, 3  # nlproto::spec::overlay


def commands(datagram):
    """The generic netlink command of each message in a datagram that is
    not to the controller (nlctrl, family id 16)."""
    out = []
    while len(datagram) >= 20:
        length = int.from_bytes(datagram[:4], "little")
        if length < 20:
            break
        if int.from_bytes(datagram[4:6], "little") != 16:
            out.append(datagram[16])
        datagram = datagram[(length + 3) & ~3:]
    return out


# --- frames -------------------------------------------------------------------

MAC_A = bytes([2, 0, 0x5E, 0x10, 0, 1])
MAC_B = bytes([2, 0, 0x5E, 0x10, 0, 2])
BCAST = b"\xff" * 6


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(proto, l4, src="192.0.2.1", dst="192.0.2.2", ident=1):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000, 64,
                      proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr


def tcp(seq, payload, flags=0x10, v6=False, src="192.0.2.1", dst="192.0.2.2"):
    hdr = struct.pack("!HHIIBBHHH", 40000, 5201, seq, 1, 5 << 4, flags, 65535, 0, 0)
    if v6:
        s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        pseudo = s + d + struct.pack("!IxxxB", len(hdr) + len(payload), 6)
    else:
        pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(
            "!xBH", 6, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def tcp4_frame(seq, payload, flags=0x10, ident=1):
    t = tcp(seq, payload, flags)
    return eth(MAC_B, MAC_A, 0x0800, ipv4(6, t + payload, ident=ident) + t + payload)


def tcp6_frame(seq, payload, flags=0x10):
    src, dst = "2001:db8::1", "2001:db8::2"
    t = tcp(seq, payload, flags, v6=True, src=src, dst=dst)
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(t) + len(payload), 6, 64,
                      socket.inet_pton(socket.AF_INET6, src),
                      socket.inet_pton(socket.AF_INET6, dst))
    return eth(MAC_B, MAC_A, 0x86DD, ip6 + t + payload)


def udp4_frame(payload):
    u = struct.pack("!HHHH", 40000, 4789, 8 + len(payload), 0)
    return eth(MAC_B, MAC_A, 0x0800, ipv4(17, u + payload) + u + payload)


def lp(b):
    return struct.pack("!H", len(b)) + b


def vxlan(vni, frame):
    return struct.pack("!BxxxI", 0x08, vni << 8) + frame


def geneve(vni, frame, options=b"", oam=False, critical=False):
    flags = (0x80 if oam else 0) | (0x40 if critical else 0)
    return struct.pack("!BBHI", len(options) // 4, flags, 0x6558, vni << 8) + options + frame


def decaps():
    p1 = bytes(range(256)) * 5
    segs = [tcp4_frame(1000 + i * len(p1), p1, ident=10 + i) for i in range(3)]
    for target, wrap in (("decap_vxlan", lambda f: vxlan(42, f)), ("decap_geneve", lambda f: geneve(42, f))):
        put(target, b"".join(lp(wrap(f)) for f in segs))
        put(target, lp(wrap(tcp6_frame(7, p1))) + lp(wrap(tcp6_frame(7 + len(p1), p1))))
        put(target, lp(wrap(udp4_frame(b"x" * 100))))
    opt = struct.pack("!HBB", 0x0102, 0x01, 1) + b"\xde\xad\xbe\xef"
    crit = struct.pack("!HBB", 0x0102, 0x81, 1) + b"\x00\x00\x00\x01"
    put("decap_geneve", lp(geneve(42, segs[0], opt)) + lp(geneve(42, segs[1], opt + crit, critical=True)))
    put("decap_geneve", lp(geneve(42, segs[0], oam=True)))
    put("decap_vxlan", lp(vxlan(1, b"\0" * 10)))


def vnet(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset):
    return struct.pack("=BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def tap_frames():
    big = bytes(range(256)) * 16
    f4 = tcp4_frame(1, big)
    put("tap_frame", vnet(1, 1, 54, 1448, 34, 16) + f4)
    put("tap_frame", vnet(1, 0x81, 54, 500, 34, 16) + tcp4_frame(1, big[:1400], flags=0x18 | 0x80))
    put("tap_frame", vnet(1, 4, 74, 1000, 54, 16) + tcp6_frame(1, big))
    u = udp4_frame(big[:3000])
    put("tap_frame", vnet(1, 5, 42, 1000, 34, 6) + u)
    put("tap_frame", vnet(1, 0, 0, 0, 34, 16) + tcp4_frame(1, big[:100]))
    put("tap_frame", vnet(0, 0, 0, 0, 0, 0) + tcp4_frame(1, big[:100]))
    put("tap_frame", vnet(0, 0, 0, 0, 0, 0) + udp4_frame(b"hello"))


# --- files ----------------------------------------------------------------------

HOSTS = b"""{
  "02:00:5e:10:00:01": { "ip": "198.51.100.11", "port": 4790,
                         "arp": "192.0.2.11", "ndp": "2001:db8::11" },
  "02:00:5e:10:00:02": { "ip": "198.51.100.12", "port": 4789,
                         "arp": "192.0.2.12", "ndp": "2001:db8::12",
                         "dhcp-proxy": "02:00:5e:10:00:01" },
  "02-00-5E-10-00-03": { "ip": "198.51.100.13" },
  "0200.5e10.0004": { "ip": "2001:db8:ffff::14", "port": 4789 }
}"""


def arp_request(tpa):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_A + socket.inet_aton("192.0.2.11") \
        + b"\0" * 6 + socket.inet_aton(tpa)
    return eth(BCAST, MAC_A, 0x0806, body)


def neighbour_solicitation(target):
    t = socket.inet_pton(socket.AF_INET6, target)
    src = socket.inet_pton(socket.AF_INET6, "2001:db8::11")
    dst = socket.inet_pton(socket.AF_INET6, "ff02::1:ff00:12")
    msg = struct.pack("!BBHI", 135, 0, 0, 0) + t + struct.pack("!BB", 1, 1) + MAC_A
    pseudo = src + dst + struct.pack("!IxxxB", len(msg), 58)
    msg = msg[:2] + struct.pack("!H", csum(pseudo + msg)) + msg[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(msg), 58, 255) + src + dst
    return eth(b"\x33\x33\xff\x00\x00\x12", MAC_A, 0x86DD, ip6 + msg)


def dhcp(op, msg_type, src, dst, ports, client, yiaddr="0.0.0.0"):
    """A DHCP message (BOOTP with the magic cookie and a message type
    option) from `src` to `dst` MAC, UDP `ports`, about `client`."""
    bootp = bytearray(236)
    bootp[0:3] = bytes([op, 1, 6])
    bootp[16:20] = socket.inet_aton(yiaddr)
    bootp[28:34] = client
    bootp += b"\x63\x82\x53\x63" + bytes([53, 1, msg_type, 255])
    u = struct.pack("!HHHH", ports[0], ports[1], 8 + len(bootp), 0) + bytes(bootp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 0, 0, 64, 17, 0,
                     b"\0\0\0\0", b"\xff\xff\xff\xff")
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return eth(dst, src, 0x0800, ip + u)


def dhcp_discover():
    return dhcp(1, 1, MAC_B, BCAST, (68, 67), MAC_B)


def dhcp_ack():
    """A server's (MAC_A's) acknowledgement of MAC_B's lease."""
    return dhcp(2, 5, MAC_A, BCAST, (67, 68), MAC_B, yiaddr="192.0.2.12")


def files():
    frames = [arp_request("192.0.2.12"), neighbour_solicitation("2001:db8::12"),
              dhcp_discover(), tcp4_frame(1, b"data"), eth(BCAST, MAC_A, 0x0800, b"\0" * 46),
              dhcp_ack()]
    for i, f in enumerate(frames):
        put("files", lp(HOSTS) + bytes([i % 4]) + f)
    put("files", lp(b"{}") + b"\x00" + frames[0])
    put("files", lp(b'{"02:00:zz:10:00:04": {"ip": "1.2.3.4"}}') + b"\x00" + frames[3])


# --- state.json ------------------------------------------------------------------

def hexu(v):
    return struct.pack("=Q", v).hex()


def hexip(text):
    if ":" in text:
        return socket.inet_pton(socket.AF_INET6, text).hex()
    return (b"\0" * 10 + b"\xff\xff" + socket.inet_aton(text)).hex()


def hexs(text):
    return (text.encode() + b"\0").hex()


def state():
    vx = {"linkid": 1, "name": "ov0", "encap": "vxlan", "search": "direct", "vnetid": 42,
          "active": True, "lookup_state": "",
          "props": [{"name": "mtu", "value": hexu(1400)},
                    {"name": "vxlan/listen_ip", "value": hexip("10.0.0.1")},
                    {"name": "vxlan/listen_port", "value": hexu(4789)},
                    {"name": "direct/dest_ip", "value": hexip("10.0.0.2")},
                    {"name": "direct/dest_port", "value": hexu(4789)}]}
    gn = {"linkid": 2, "name": "ov1", "encap": "geneve", "search": "files", "vnetid": 7,
          "active": False, "lookup_state": "", "associated": True,
          "props": [{"name": "geneve/listen_ip", "value": hexip("2001:db8::1")},
                    {"name": "geneve/options", "value": hexs("0x0102:0x01:deadbeef")},
                    {"name": "files/config", "value": hexs("/nonexistent/hosts.json")}]}
    put("state", json.dumps({"version": 1, "next_linkid": 3, "devices": [vx, gn]}, indent=1).encode())
    put("state", json.dumps({"version": 1, "next_linkid": 2, "devices": [vx]}).encode())
    put("state", b'{"version": 1, "next_linkid": 1, "devices": []}')
    put("state", b'{"version": 99, "next_linkid": 2, "devices": []}')


# --- overlayctl arguments ------------------------------------------------------

def ctl():
    texts = {
        0: ["42", "0x10", "18446744073709551615", "1e3"],
        1: ["-5", "9223372036854775807", "+7"],
        2: ["10.0.0.1", "2001:db8::1", "::ffff:192.0.2.1", "[2001:db8::1]"],
        3: ["hello", "/etc/overlayd/hosts.json", "0x0102:0x01:deadbeef,0x0103:0x02:00"],
        4: ["02:00:00:00:00:04=10.9.0.4:4789", "2-0-0-0-0-5=drop", "0200.0000.0004=[2001:db8::3]:4789",
            "02000000000a=02:00:00:00:00:0b,10.0.0.1:6081", "02:00:00:00:00:04",
            "vxlan/listen_ip=198.51.100.1,direct/dest_ip=198.51.100.2,direct/dest_port=4789"],
        5: ["# two devices\ncreate -e vxlan -s direct -v 42 -p vxlan/listen_ip=198.51.100.1 ov0\n"
            "activate ov0\nshow\n", "prop-set ov0 'geneve/options=a b' \\\n  mtu=1450\n",
            "create \"quoted word\" 'single' back\\ slash"],
    }
    for sel, items in texts.items():
        for t in items:
            put("ctl_parse", bytes([sel]) + t.encode())


# --- plugin files ----------------------------------------------------------------

def elf(plugin_dir, small_so):
    with open(small_so, "rb") as f:
        put("elf", b"\x00" + f.read())
    with open(os.path.join(plugin_dir, "liboverlay_direct.so"), "rb") as f:
        whole = f.read()
    put("elf", b"\x00" + whole[:16384])
    for cut in (0, 64, 4096, len(whole) // 3, len(whole) // 2, len(whole) - 1):
        put("elf", b"\x01" + struct.pack("!I", cut))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    n = requests()
    decaps()
    tap_frames()
    files()
    state()
    ctl()
    elf(sys.argv[1], sys.argv[2])
    print(f"seeds: {n} golden requests, corpora in {CORPUS}")


main()
