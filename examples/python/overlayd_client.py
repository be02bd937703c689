#!/usr/bin/python3
"""A client of overlayd's control protocol in Python, on pyroute2.

pyroute2's netlink message classes encode and decode every message (the
netlink and genetlink headers, attributes, nesting); this file declares
the overlay families' attributes for them (docs/protocol.md, section 6),
opens the daemon's Unix socket itself (AF_UNIX, SOCK_SEQPACKET: one
datagram per send, replies in datagrams of one or more messages) and
implements the request kinds: transactions, dumps and acks, errors with
their extended-ack text, and multicast notifications.

Use it as a library (class Overlayd) or from the command line:

    overlayd_client.py [--socket PATH] families
    overlayd_client.py plugins
    overlayd_client.py create NAME ENCAP SEARCH VNETID [KEY=VALUE ...]
    overlayd_client.py activate NAME
    overlayd_client.py show [NAME]
    overlayd_client.py delete NAME
    overlayd_client.py monitor [--count N]

Property values are typed as the protocol says: integers as 8-byte
native unsigned, IP addresses as 16-byte in6_addr (IPv4 mapped), strings
NUL-terminated. Needs pyroute2 (Debian: python3-pyroute2).
"""

import argparse
import ipaddress
import os
import socket
import struct
import sys

from pyroute2.netlink import (
    CTRL_CMD_GETFAMILY,
    GENL_ID_CTRL,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLA_F_NESTED,
    NLMSG_DONE,
    NLMSG_ERROR,
    ctrlmsg,
    genlmsg,
    nla,
    nlmsg,
    nlmsgerr,
)

DEFAULT_SOCKET = "/run/overlayd/overlayd.sock"
NLM_F_DUMP_INTR = 0x10


class extack(nlmsg):
    """The extended-ack attributes that follow a capped NLMSG_ERROR, given
    a netlink header of their own so that pyroute2 decodes them."""

    fields = ()
    nla_map = nlmsgerr.nla_map


class handlemsg(genlmsg):
    """overlay_handle (docs/protocol.md: the connection itself)."""

    nla_map = (
        (1, "HANDLE_ATTR_PID", "uint32"),
        (2, "HANDLE_ATTR_MCAST_GROUP", "uint32"),
        (3, "HANDLE_ATTR_HANDLES", "uint32"),
    )


class overlaymsg(genlmsg):
    """overlay: devices, properties, plugins, counters."""

    class prop(nla):
        nla_flags = NLA_F_NESTED
        nla_map = (
            (9, "PROP_NAME", "asciiz"),
            (10, "PROP_ID", "uint32"),
            (11, "PROP_TYPE", "uint32"),
            (12, "PROP_PERM", "uint32"),
            (13, "PROP_VALUE", "cdata"),
            (14, "PROP_DEFAULT", "cdata"),
            (15, "PROP_RANGE_MIN", "uint64"),
            (16, "PROP_RANGE_MAX", "uint64"),
            (17, "PROP_POSSIBLE", "possible"),
        )

        class possible(nla):
            nla_flags = NLA_F_NESTED
            nla_map = ((28, "POSSIBLE_VALUE", "asciiz"),)

    class props(nla):
        nla_flags = NLA_F_NESTED
        nla_map = ((19, "PROP", "prop"),)

    class stats(nla):
        nla_flags = NLA_F_NESTED
        nla_map = ((31, "STAT", "stat"),)

        class stat(nla):
            nla_flags = NLA_F_NESTED
            nla_map = (
                (32, "STAT_NAME", "asciiz"),
                (33, "STAT_VALUE", "uint64"),
            )

    class mux(nla):
        nla_flags = NLA_F_NESTED
        nla_map = (
            (35, "MUX_ENDPOINT", "asciiz"),
            (30, "STATS", "stats"),
        )

    nla_map = (
        (1, "LINKID", "uint32"),
        (2, "NAME", "asciiz"),
        (3, "ENCAP", "asciiz"),
        (4, "SEARCH", "asciiz"),
        (5, "VNETID", "uint64"),
        (6, "STATE", "uint32"),
        (7, "STATUS", "uint32"),
        (8, "STATUS_MSG", "asciiz"),
        (9, "PROP_NAME", "asciiz"),
        (10, "PROP_ID", "uint32"),
        (11, "PROP_TYPE", "uint32"),
        (12, "PROP_PERM", "uint32"),
        (13, "PROP_VALUE", "cdata"),
        (14, "PROP_DEFAULT", "cdata"),
        (18, "PROPS", "props"),
        (19, "PROP", "prop"),
        (20, "PLUGIN_NAME", "asciiz"),
        (21, "PLUGIN_KIND", "uint32"),
        (22, "PLUGIN_VERSION", "asciiz"),
        (23, "PLUGIN_FILE", "asciiz"),
        (24, "PLUGIN_ID_SIZE", "uint32"),
        (25, "PLUGIN_DEST", "uint32"),
        (26, "PLUGIN_FLAGS", "uint32"),
        (27, "PLUGIN_MODES", "uint32"),
        (29, "ABI_VERSION", "asciiz"),
        (30, "STATS", "stats"),
        (34, "MUX", "mux"),
        (36, "TEMPORARY", "flag"),
        (37, "CACHE_ENTRIES", "uint64"),
    )


# The nested classes refer to their siblings by name; pyroute2 looks the
# name up on the class that holds the attribute.
overlaymsg.props.prop = overlaymsg.prop
overlaymsg.mux.stats = overlaymsg.stats

# overlay commands (docs/protocol.md, section 6).
CREATE, DELETE, ACTIVATE, PROPINFO, GETPROP, SETPROP = 1, 2, 3, 4, 5, 6
STATUS, LIST, PLUGINS, STATS, DEACTIVATED, STATUS_CHANGED = 7, 8, 9, 10, 11, 12
# overlay_handle commands.
GET_PID, JOIN_GROUP, LEAVE_GROUP, SERVER_STATS = 1, 2, 3, 4
# Property types.
PROP_UINT, PROP_INT, PROP_IP, PROP_STRING = 2, 1, 3, 4

EVENTS = {
    CREATE: "create",
    DELETE: "delete",
    ACTIVATE: "activate",
    SETPROP: "setprop",
    DEACTIVATED: "deactivate",
    STATUS_CHANGED: "status",
}
STATES = {1: "created", 2: "active"}


class DaemonError(Exception):
    """A request the daemon refused: errno and its message."""

    def __init__(self, errno, message):
        self.errno = errno
        self.message = message
        name = os.strerror(errno)
        super().__init__(f"{message or name} ({name}, errno {errno})")


def encode_value(ptype, text):
    """A property value as the protocol carries it."""
    if ptype == PROP_UINT:
        return struct.pack("=Q", int(text, 0))
    if ptype == PROP_INT:
        return struct.pack("=q", int(text, 0))
    if ptype == PROP_IP:
        ip = ipaddress.ip_address(text)
        if ip.version == 4:
            ip = ipaddress.IPv6Address("::ffff:" + text)
        return ip.packed
    return text.encode() + b"\0"


class Overlayd:
    """One connection (one handle) to the daemon."""

    def __init__(self, path=DEFAULT_SOCKET, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.seq = 0
        self.families = {}
        self.pending = []  # notifications read while waiting for a reply

    def close(self):
        self.sock.close()

    # -- the wire ---------------------------------------------------------

    def _send(self, msg, family, cmd, version, attrs, flags):
        self.seq += 1
        msg["cmd"] = cmd
        msg["version"] = version
        msg["attrs"] = attrs
        msg["header"]["type"] = family
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self.seq
        msg["header"]["pid"] = 0
        msg.encode()
        self.sock.send(msg.data)
        return self.seq

    def _messages(self):
        """The messages of the next datagram: (type, flags, seq, bytes)."""
        data = self.sock.recv(1 << 20)
        offset = 0
        while offset + 16 <= len(data):
            length, mtype, flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
            if length < 16:
                raise ValueError(f"bad nlmsg_len {length}")
            yield mtype, flags, seq, data[offset : offset + length]
            offset += (length + 3) & ~3

    @staticmethod
    def _error(raw):
        """An NLMSG_ERROR's errno (0: an ack) and its extended-ack text.

        The daemon caps the echoed request to its header (NLM_F_CAPPED) and
        appends the extended-ack attributes (NLM_F_ACK_TLVS) after it, as
        Linux does; pyroute2's nlmsgerr decodes the errno, and its
        attribute map (NLMSGERR_ATTR_MSG, ...) the attributes found there.
        """
        err = nlmsgerr(raw)
        err.decode()
        code = -err["error"]
        if not code:
            return 0, None
        flags = err["header"]["flags"]
        start = 16 + 4 + (16 if flags & NLM_F_CAPPED else struct.unpack_from("=I", raw, 20)[0])
        message = None
        if flags & NLM_F_ACK_TLVS:
            tlvs = raw[start:]
            ack = extack(struct.pack("=IHHII", 16 + len(tlvs), 0, 0, 0, 0) + tlvs)
            ack.decode()
            message = ack.get_attr("NLMSGERR_ATTR_MSG")
        return code, message

    def request(self, cls, family, cmd, version=1, attrs=(), dump=False):
        """Sends a request and returns every reply message, decoded with
        cls. A transaction gets its reply then the ack; a dump its parts
        then NLMSG_DONE. Raises DaemonError for an NLMSG_ERROR."""
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        seq = self._send(cls(), family, cmd, version, list(attrs), flags)
        replies = []
        while True:
            for mtype, mflags, mseq, raw in self._messages():
                if mseq != seq:
                    if mseq == 0:
                        self.pending.append((mtype, raw))
                    continue
                if mtype == NLMSG_ERROR:
                    code, message = self._error(raw)
                    if code:
                        raise DaemonError(code, message)
                    return replies
                if mtype == NLMSG_DONE:
                    return replies
                m = cls(raw)
                m.decode()
                replies.append(m)

    # -- families -------------------------------------------------------

    def resolve(self, name):
        """nlctrl GETFAMILY: the family's id, version and groups."""
        if name not in self.families:
            (m,) = self.request(
                ctrlmsg,
                GENL_ID_CTRL,
                CTRL_CMD_GETFAMILY,
                version=2,
                attrs=[("CTRL_ATTR_FAMILY_NAME", name)],
            )
            groups = {}
            for g in m.get_attr("CTRL_ATTR_MCAST_GROUPS") or []:
                groups[g.get_attr("CTRL_ATTR_MCAST_GRP_NAME")] = g.get_attr(
                    "CTRL_ATTR_MCAST_GRP_ID"
                )
            self.families[name] = {
                "id": m.get_attr("CTRL_ATTR_FAMILY_ID"),
                "version": m.get_attr("CTRL_ATTR_VERSION"),
                "groups": groups,
            }
        return self.families[name]

    def all_families(self):
        """nlctrl GETFAMILY dump: every family's name and id."""
        return [
            (m.get_attr("CTRL_ATTR_FAMILY_NAME"), m.get_attr("CTRL_ATTR_FAMILY_ID"))
            for m in self.request(ctrlmsg, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 2, dump=True)
        ]

    def overlay(self, cmd, attrs=(), dump=False):
        return self.request(overlaymsg, self.resolve("overlay")["id"], cmd, 1, attrs, dump)

    def handle(self, cmd, attrs=()):
        return self.request(handlemsg, self.resolve("overlay_handle")["id"], cmd, 1, attrs)

    # -- commands -------------------------------------------------------

    def plugins(self):
        """Every loaded plugin: name, kind, version, properties."""
        out = []
        for m in self.overlay(PLUGINS, dump=True):
            props = m.get_attr("PROPS")
            out.append(
                {
                    "name": m.get_attr("PLUGIN_NAME"),
                    "kind": {1: "encap", 2: "lookup"}.get(m.get_attr("PLUGIN_KIND")),
                    "version": m.get_attr("PLUGIN_VERSION"),
                    "props": [
                        (p.get_attr("PROP_NAME"), p.get_attr("PROP_TYPE"))
                        for p in (props.get_attrs("PROP") if props else [])
                    ],
                }
            )
        return out

    def prop_types(self, encap, search):
        """The type of every property a new device of encap and search has."""
        types = {
            "mtu": PROP_UINT, "vnetid": PROP_UINT, "backend": PROP_STRING,
            "ifname": PROP_STRING, "srcport_min": PROP_UINT,
            "srcport_max": PROP_UINT, "flood": PROP_UINT,
        }
        for p in self.plugins():
            if p["name"] in (encap, search):
                types.update(dict(p["props"]))
        return types

    def create(self, name, encap, search, vnetid, props=None):
        """CREATE with the initial properties {name: text value}."""
        attrs = [("NAME", name), ("ENCAP", encap), ("SEARCH", search), ("VNETID", vnetid)]
        if props:
            types = self.prop_types(encap, search)
            entries = []
            for key, value in props.items():
                if key not in types:
                    raise ValueError(f"unknown property {key}; known: {', '.join(sorted(types))}")
                encoded = encode_value(types[key], value)
                entries.append(("PROP", {"attrs": [("PROP_NAME", key), ("PROP_VALUE", encoded)]}))
            attrs.append(("PROPS", {"attrs": entries}))
        (m,) = self.overlay(CREATE, attrs)
        return self._device(m)

    def activate(self, name):
        self.overlay(ACTIVATE, [("NAME", name)])

    def delete(self, name):
        self.overlay(DELETE, [("NAME", name)])

    @staticmethod
    def _device(m):
        return {
            "link": m.get_attr("NAME"),
            "linkid": m.get_attr("LINKID"),
            "encap": m.get_attr("ENCAP"),
            "search": m.get_attr("SEARCH"),
            "vnetid": m.get_attr("VNETID"),
            "state": STATES.get(m.get_attr("STATE"), "?"),
            "status": "degraded" if m.get_attr("STATUS") == 1 else "ok",
        }

    def show(self, name=None):
        """LIST: one device, or all of them (a dump)."""
        if name:
            return [self._device(m) for m in self.overlay(LIST, [("NAME", name)])]
        return [self._device(m) for m in self.overlay(LIST, dump=True)]

    def stats(self, name):
        """STATS of a device: its counters by name."""
        (m,) = self.overlay(STATS, [("NAME", name)])
        s = m.get_attr("STATS")
        return {x.get_attr("STAT_NAME"): x.get_attr("STAT_VALUE") for x in s.get_attrs("STAT")}

    # -- notifications --------------------------------------------------

    def join(self, family, group):
        """JOIN_GROUP for a group of a family, by names."""
        gid = self.resolve(family)["groups"][group]
        self.handle(JOIN_GROUP, [("HANDLE_ATTR_MCAST_GROUP", gid)])

    def notifications(self):
        """Yields every notification of the joined groups as a dict."""
        overlay_id = self.resolve("overlay")["id"]
        while True:
            while self.pending:
                mtype, raw = self.pending.pop(0)
                event = self._event(overlay_id, mtype, raw)
                if event:
                    yield event
            self.sock.settimeout(None)
            for mtype, _flags, _seq, raw in self._messages():
                self.pending.append((mtype, raw))

    def _event(self, overlay_id, mtype, raw):
        if mtype == NLMSG_ERROR:
            code, message = self._error(raw)
            # ENOBUFS: the daemon dropped notifications; list the devices again.
            return {"event": "lost", "errno": code, "message": message}
        if mtype != overlay_id:
            return None
        m = overlaymsg(raw)
        m.decode()
        event = {"event": EVENTS.get(m["cmd"], str(m["cmd"])), "link": m.get_attr("NAME")}
        if m["cmd"] == SETPROP:
            event["property"] = m.get_attr("PROP_NAME")
        if m["cmd"] == STATUS_CHANGED:
            event["status"] = "degraded" if m.get_attr("STATUS") == 1 else "ok"
            event["message"] = m.get_attr("STATUS_MSG")
        return event


def main(argv=None):
    parser = argparse.ArgumentParser(description="overlayd control protocol client (pyroute2)")
    parser.add_argument("--socket", default=os.environ.get("OVERLAYD_SOCKET", DEFAULT_SOCKET))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("families")
    sub.add_parser("plugins")
    c = sub.add_parser("create")
    c.add_argument("name")
    c.add_argument("encap")
    c.add_argument("search")
    c.add_argument("vnetid", type=lambda v: int(v, 0))
    c.add_argument("props", nargs="*", metavar="KEY=VALUE")
    for name in ("activate", "delete"):
        sub.add_parser(name).add_argument("name")
    sub.add_parser("show").add_argument("name", nargs="?")
    sub.add_parser("stats").add_argument("name")
    m = sub.add_parser("monitor")
    m.add_argument("--count", type=int, default=0, help="stop after this many events")
    args = parser.parse_args(argv)

    try:
        d = Overlayd(args.socket)
    except OSError as e:
        print(f"overlayd_client: cannot connect to {args.socket}: {e}", file=sys.stderr)
        return 1
    try:
        if args.command == "families":
            for name, fid in d.all_families():
                print(f"{name} {fid}")
        elif args.command == "plugins":
            for p in d.plugins():
                print(f"{p['name']} {p['kind']} {p['version']} {','.join(n for n, _ in p['props'])}")
        elif args.command == "create":
            props = dict(p.split("=", 1) for p in args.props)
            dev = d.create(args.name, args.encap, args.search, args.vnetid, props)
            print(f"{dev['link']} linkid={dev['linkid']} state={dev['state']}")
        elif args.command == "activate":
            d.activate(args.name)
        elif args.command == "delete":
            d.delete(args.name)
        elif args.command == "show":
            for dev in d.show(args.name):
                print(" ".join(f"{k}={v}" for k, v in dev.items()))
        elif args.command == "stats":
            for name, value in d.stats(args.name).items():
                print(f"{name} {value}")
        elif args.command == "monitor":
            d.join("overlay", "config")
            d.join("overlay", "status")
            print("subscribed", flush=True)
            for n, event in enumerate(d.notifications(), 1):
                print(" ".join(f"{k}={v}" for k, v in event.items()), flush=True)
                if args.count and n >= args.count:
                    break
    except DaemonError as e:
        print(f"overlayd_client: {args.command}: {e}", file=sys.stderr)
        return 1
    finally:
        d.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
