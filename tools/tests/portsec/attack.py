"""Port-security attacks (tools/tests/demo_portsec.rs), run with Debian's
/usr/bin/python3 and scapy inside the attacker pod's network namespace.
argv[1]: JSON {prefix, iface, me: {ip, mac}, gw_ip, victims: [{name, ip,
mac, ofport, same_tenant}], nodes: [underlay IPv4], fake_mac, vnis}.
Every packet carries a unique marker PREFIX-NN-what in its payload; prints
one line per attack: "NN what count". Sends each packet 3 times."""
import json, struct, sys
from scapy.all import (ARP, BOOTP, DHCP, TCP, Dot1Q, Ether, ICMPv6ND_NA,
                       ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr,
                       ICMPv6NDOptDstLLAddr, IP, IPv6, Raw, UDP, conf, sendp, srp1)

from scapy.utils6 import in6_mactoifaceid

conf.verb = 0
c = json.loads(sys.argv[1])
P, IF, me = c["prefix"], c["iface"], c["me"]
for x in c["victims"] + [me]:
    if not x.get("ll6"):
        x["ll6"] = "fe80::" + in6_mactoifaceid(x["mac"])
BCAST = "ff:ff:ff:ff:ff:ff"
attacks = []
n = [0]

def add(what, build):
    n[0] += 1
    marker = ("%s-%02d-%s|" % (P, n[0], what)).encode()
    attacks.append((n[0], what, build(marker)))

# The gateway's MAC, asked the normal way (ARP who-has from our own
# addresses; the switch's ARP responder answers).
r = srp1(Ether(dst=BCAST, src=me["mac"]) / ARP(op=1, hwsrc=me["mac"], psrc=me["ip"], pdst=c["gw_ip"]),
         iface=IF, timeout=2)
gw_mac = r[ARP].hwsrc if r is not None and ARP in r else BCAST

def l4(v):
    # What the victim's policy admits from the attacker (so only port
    # security can stop the packet): TCP to its open port, else UDP.
    if v["proto"] == "tcp":
        return TCP(sport=40000, dport=v["port"], flags="S")
    return UDP(sport=40000, dport=v["port"])

def udp(src_mac, src_ip, dst_mac, dst_ip, m, v):
    return Ether(src=src_mac, dst=dst_mac) / IP(src=src_ip, dst=dst_ip) / l4(v) / Raw(m)

# Controls: the same packet with the attacker's own addresses, which the
# victim's policy admits: the victim's sniffer must see it.
for v in c["victims"]:
    if v["control"]:
        add("CTRL-" + v["name"].replace("/", "_"),
            lambda m, v=v: [udp(me["mac"], me["ip"], v["mac"], v["ip"], m, v)])

for v in c["victims"]:
    vm, vi, vn = v["mac"], v["ip"], v["name"].replace("/", "_")
    others = [o for o in c["victims"] if o["name"] != v["name"]]
    for o in others:
        tag = "same" if o["same_tenant"] else "other"
        # Spoofed source IP (another pod's, same or other tenant), own MAC.
        add("spoof-ip-%s-%s-to-%s" % (tag, o["name"].replace("/", "_"), vn),
            lambda m, o=o: [udp(me["mac"], o["ip"], vm, vi, m, v), udp(me["mac"], o["ip"], gw_mac, vi, m, v)])
    o = others[0]
    # Another pod's source MAC, own IP; and both of another pod.
    add("spoof-mac-to-" + vn, lambda m, o=o: [udp(o["mac"], me["ip"], vm, vi, m, v), udp(o["mac"], me["ip"], gw_mac, vi, m, v)])
    add("spoof-mac-ip-to-" + vn, lambda m, o=o: [udp(o["mac"], o["ip"], vm, vi, m, v)])
    add("spoof-fake-mac-to-" + vn, lambda m: [udp(c["fake_mac"], me["ip"], vm, vi, m, v)])
    # ARP: replies to the victim claiming another pod's and the gateway's
    # address; gratuitous ARP (request and reply forms) broadcast.
    for claim, cname in ((o["ip"], "pod"), (c["gw_ip"], "gateway")):
        for hw in (me["mac"], c["fake_mac"]):
            add("arp-reply-%s-to-%s" % (cname, vn),
                lambda m, claim=claim, hw=hw: [Ether(src=me["mac"], dst=vm) / ARP(op=2, hwsrc=hw, psrc=claim, hwdst=vm, pdst=vi) / Raw(m)])
    # Unicast DHCP offer to the victim from our own addresses.
    add("dhcp-offer-unicast-to-" + vn,
        lambda m: [Ether(src=me["mac"], dst=vm) / IP(src=me["ip"], dst=vi) / UDP(sport=67, dport=68)
                   / BOOTP(op=2, yiaddr=vi, siaddr=me["ip"], chaddr=bytes.fromhex(vm.replace(":", "")), sname=m)
                   / DHCP(options=[("message-type", "offer"), ("server_id", me["ip"]), ("router", me["ip"]),
                                   ("subnet_mask", "255.255.255.0"), ("lease_time", 3600), "end"])])
    # 802.1Q: VLAN 0 (priority tag) and VLAN 100, own addresses.
    for vid in (0, 100):
        add("vlan%d-to-%s" % (vid, vn),
            lambda m, vid=vid: [Ether(src=me["mac"], dst=vm) / Dot1Q(vlan=vid) / IP(src=me["ip"], dst=vi) / l4(v) / Raw(m),
                                Ether(src=me["mac"], dst=gw_mac) / Dot1Q(vlan=vid) / IP(src=me["ip"], dst=vi) / l4(v) / Raw(m),
                                Ether(src=me["mac"], dst=BCAST) / Dot1Q(vlan=vid) / ARP(op=2, hwsrc=me["mac"], psrc=c["gw_ip"], pdst=vi) / Raw(m)])
    # Hand-built VXLAN and Geneve to every node's underlay address, the
    # inner frame addressed to the victim (Geneve with Weft's option
    # naming the victim's port as the output port).
    for node_ip in c["nodes"]:
        for vni in c["vnis"]:
            def inner(m):
                return bytes(Ether(src=me["mac"], dst=vm) / IP(src=me["ip"], dst=vi) / l4(v) / Raw(m))
            vx = lambda m, vni=vni: struct.pack("!B3xI", 0x08, vni << 8) + inner(m)
            opt = struct.pack("!HBBI", 0xFF57, 0x80, 1, (1 << 16) | v["ofport"])
            gn = lambda m, vni=vni, opt=opt: struct.pack("!BBHI", len(opt) // 4, 0, 0x6558, vni << 8) + opt + inner(m)
            for kind, port, body in (("vxlan", 4789, vx), ("geneve", 6081, gn)):
                add("%s-vni%d-via-%s-to-%s" % (kind, vni, node_ip, vn),
                    lambda m, port=port, body=body, node_ip=node_ip: [
                        Ether(src=me["mac"], dst=d) / IP(src=me["ip"], dst=node_ip) / UDP(sport=40001, dport=port) / Raw(body(m))
                        for d in (gw_mac, BCAST, c["node_macs"].get(node_ip, BCAST))])

# Link-wide: IPv6 NA claiming a victim's and the gateway's link-local
# address (and an IPv4-mapped one), a router advertisement, a broadcast
# DHCP offer.
for v in c["victims"]:
    ll = v["ll6"]
    if True:
        add("nd-na-claim-" + v["name"].replace("/", "_"),
            lambda m, ll=ll, v=v: [Ether(src=me["mac"], dst="33:33:00:00:00:01") / IPv6(src=ll, dst="ff02::1", hlim=255)
                                   / ICMPv6ND_NA(tgt=ll, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=me["mac"]) / Raw(m),
                                   Ether(src=me["mac"], dst=v["mac"]) / IPv6(src=me["ll6"], dst=ll, hlim=255)
                                   / ICMPv6ND_NA(tgt=ll, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=me["mac"]) / Raw(m)])
add("nd-na-claim-gateway",
    lambda m: [Ether(src=me["mac"], dst="33:33:00:00:00:01") / IPv6(src=me["ll6"], dst="ff02::1", hlim=255)
               / ICMPv6ND_NA(tgt="fe80::1", R=1, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=me["mac"]) / Raw(m)])
add("router-advertisement",
    lambda m: [Ether(src=me["mac"], dst="33:33:00:00:00:01") / IPv6(src=me["ll6"], dst="ff02::1", hlim=255)
               / ICMPv6ND_RA(routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=me["mac"])
               / ICMPv6NDOptPrefixInfo(prefix="2001:db8:bad::", prefixlen=64) / Raw(m)])
add("dhcp-offer-broadcast",
    lambda m: [Ether(src=me["mac"], dst=BCAST) / IP(src=me["ip"], dst="255.255.255.255") / UDP(sport=67, dport=68)
               / BOOTP(op=2, yiaddr=c["victims"][0]["ip"], siaddr=me["ip"], sname=m)
               / DHCP(options=[("message-type", "offer"), ("server_id", me["ip"]), ("router", me["ip"]), "end"])])
for claim in [c["gw_ip"]] + [v["ip"] for v in c["victims"]]:
    add("garp-" + claim,
        lambda m, claim=claim: [Ether(src=me["mac"], dst=BCAST) / ARP(op=1, hwsrc=me["mac"], psrc=claim, pdst=claim) / Raw(m),
                                Ether(src=me["mac"], dst=BCAST) / ARP(op=2, hwsrc=me["mac"], psrc=claim, hwdst=BCAST, pdst=claim) / Raw(m),
                                Ether(src=c["fake_mac"], dst=BCAST) / ARP(op=1, hwsrc=c["fake_mac"], psrc=claim, pdst=claim) / Raw(m)])

for _ in range(3):
    for _, _, pkts in attacks:
        sendp(pkts, iface=IF)
for i, what, pkts in attacks:
    print("%02d %s %d" % (i, what, len(pkts)))
print("gateway-mac " + gw_mac)
