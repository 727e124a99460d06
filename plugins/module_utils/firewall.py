# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables input rules from the flows each role declares.

A flow is {name, port (int or list), proto (tcp, udp or both), from}; `from`
is "any" or a list of inventory hosts, IP addresses and CIDR networks. Hosts
become their addresses, so a rule names exactly the peers a service needs.
"""

import ipaddress
import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.inventory import host_address
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_cidr,
    check_port,
    records,
)

# fullmatch: `$` would let a trailing newline into the rule's comment.
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
FLOW_KEYS = {"name", "port", "proto", "from"}


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _networks(sources, hostvars, path):
    """Split sources into (IPv4, IPv6) address/network strings."""
    v4, v6 = set(), set()
    for index, source in enumerate(sources):
        where = "%s[%d]" % (path, index)
        if not isinstance(source, str) or not source:
            raise InputError(where, "must be a host, an address or a network")
        if "/" in source:
            network = ipaddress.ip_network(check_cidr(source, where))
        else:
            try:
                network = ipaddress.ip_network(source)
            except ValueError:
                network = ipaddress.ip_network(host_address(source, hostvars))
        (v4 if network.version == 4 else v6).add(
            str(network.network_address) if network.num_addresses == 1 else str(network)
        )
    return sorted(v4), sorted(v6)


def _set(items):
    items = [str(item) for item in items]
    return items[0] if len(items) == 1 else "{ %s }" % ", ".join(items)


def nft_rules(flows, hostvars, admin_sources=(), path="flows"):
    """Input-chain rules (strings) accepting the declared flows and the admin networks."""
    rules = []
    v4, v6 = _networks(list(admin_sources), hostvars, "nftables_admin_sources")
    for family, addresses in (("ip", v4), ("ip6", v6)):
        if addresses:
            rules.append('%s saddr %s accept comment "admin"' % (family, _set(addresses)))
    for where, flow in records(flows, FLOW_KEYS, path):
        name = flow.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InputError(where + ".name", "%r is not a flow name (a-z, 0-9, -)" % (name,))
        ports = sorted({check_port(port, where + ".port") for port in _as_list(flow.get("port"))})
        protos = _as_list(flow.get("proto", "tcp"))
        if not protos or any(proto not in ("tcp", "udp") for proto in protos):
            raise InputError(where + ".proto", "must be tcp, udp or a list of them")
        sources = flow.get("from", "any")
        if sources == "any":
            selectors = [""]
        else:
            if not isinstance(sources, list):
                raise InputError(where + ".from", 'must be "any" or a list')
            v4, v6 = _networks(sources, hostvars, where + ".from")
            # An empty list (no such peers in this inventory) opens nothing.
            selectors = ["ip saddr %s " % _set(v4)] * bool(v4) + ["ip6 saddr %s " % _set(v6)] * bool(v6)
        for selector in selectors:
            for proto in sorted(set(protos)):
                rules.append('%s%s dport %s accept comment "%s"' % (selector, proto, _set(ports), name))
    return rules
