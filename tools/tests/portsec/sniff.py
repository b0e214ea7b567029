"""Port-security sniffer (tools/tests/demo_portsec.rs): one raw AF_PACKET
socket (ETH_P_ALL) in this network namespace. argv: PREFIX SELF IFACE...
Captures every frame on the interfaces named (both directions) until stdin
closes, then prints one JSON object: frames seen, whether its own
self-test frame was seen, and every finding:
- a frame holding the marker prefix argv[1] (an attack packet, or its inner
  frame) anywhere in its bytes;
- an ARP frame whose sender hardware address is in env WEFT_BAD_MACS
  (comma separated) claiming another address than env WEFT_OWN_IP (an ARP
  claim that lost its marker padding on the way).
Plain Python (no scapy) so it runs under any python3."""
import json, os, select, socket, sys

prefix = sys.argv[1].encode()
self_marker = sys.argv[2].encode()
ifaces = set(sys.argv[3:])
bad_macs = {m.strip().lower() for m in os.environ.get("WEFT_BAD_MACS", "").split(",") if m.strip()}
own_ip = os.environ.get("WEFT_OWN_IP", "")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
frames, findings, self_seen = 0, [], False
if sys.argv[2] != "-":
    # Self-test: a frame sent by a second socket out of each interface
    # (a local experimental EtherType) must come back to this socket, or
    # the sniffer would prove nothing.
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    for i in sorted(ifaces):
        tx.bind((i, 0))
        tx.send(b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5" + self_marker + b"|" + b"\x00" * 32)
print("ready", flush=True)
def mac(b):
    return ":".join("%02x" % x for x in b)
while True:
    r, _, _ = select.select([s, sys.stdin], [], [])
    if s in r:
        data, addr = s.recvfrom(65535)
        if addr[0] not in ifaces:
            continue
        frames += 1
        if sys.argv[2] != "-" and self_marker in data:
            self_seen = True
            continue
        i = data.find(prefix)
        if i >= 0:
            end = i + len(prefix)
            while end < len(data) and 0x21 <= data[end] <= 0x7e and data[end] != 0x7c:
                end += 1
            findings.append({"iface": addr[0], "marker": data[i:end].decode(), "frame": data[:96].hex()})
            continue
        et = int.from_bytes(data[12:14], "big")
        off = 14
        while et in (0x8100, 0x88a8) and len(data) >= off + 4:
            et = int.from_bytes(data[off + 2:off + 4], "big")
            off += 4
        if et == 0x0806 and len(data) >= off + 28:
            sha = mac(data[off + 8:off + 14])
            spa = socket.inet_ntoa(data[off + 14:off + 18])
            if sha in bad_macs and spa != own_ip:
                findings.append({"iface": addr[0], "marker": "arp-claim %s is-at %s" % (spa, sha), "frame": data[:96].hex()})
    if sys.stdin in r:
        if not os.read(sys.stdin.fileno(), 4096):
            break
print(json.dumps({"frames": frames, "self_seen": self_seen, "findings": findings}), flush=True)
