import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils.firewall import nft_rules
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

HOSTVARS = {
    "mx": {"ansible_default_ipv4": {"address": "10.89.0.12"}},
    "mx2": {"mailstack_address": "2001:db8::25"},
    "imap": {"ansible_default_ipv4": {"address": "10.89.0.14"}},
}


def test_open_flow_has_no_source_selector():
    assert nft_rules([{"name": "smtp", "port": 25, "from": "any"}], HOSTVARS) == ['tcp dport 25 accept comment "smtp"']


def test_hosts_become_their_addresses_per_family():
    rules = nft_rules([{"name": "sasl", "port": [12345, 24], "from": ["mx", "mx2", "imap"]}], HOSTVARS)
    assert rules == [
        'ip saddr { 10.89.0.12, 10.89.0.14 } tcp dport { 24, 12345 } accept comment "sasl"',
        'ip6 saddr 2001:db8::25 tcp dport { 24, 12345 } accept comment "sasl"',
    ]


def test_both_protocols_and_networks():
    rules = nft_rules([{"name": "dns", "port": 53, "proto": ["udp", "tcp"], "from": ["10.0.0.0/8"]}], HOSTVARS)
    assert rules == [
        'ip saddr 10.0.0.0/8 tcp dport 53 accept comment "dns"',
        'ip saddr 10.0.0.0/8 udp dport 53 accept comment "dns"',
    ]


def test_no_peers_opens_nothing():
    assert nft_rules([{"name": "lmtp", "port": 24, "from": []}], HOSTVARS) == []


def test_admin_networks_come_first():
    rules = nft_rules([{"name": "imaps", "port": 993}], HOSTVARS, ["10.89.0.1", "fd00::/64"])
    assert rules[:2] == ['ip saddr 10.89.0.1 accept comment "admin"', 'ip6 saddr fd00::/64 accept comment "admin"']


@pytest.mark.parametrize(
    ("flows", "path", "message"),
    [
        ([{"name": "x", "port": 70000}], "flows[0].port", "port"),
        ([{"name": "x", "port": "25"}], "flows[0].port", "port"),
        ([{"name": "x", "port": 25, "proto": "icmp"}], "flows[0].proto", "tcp, udp"),
        ([{"name": "x;drop", "port": 25}], "flows[0].name", "flow name"),
        ([{"name": 'x" accept', "port": 25}], "flows[0].name", "flow name"),
        ([{"name": "x", "port": 25, "from": ["10.0.0.1/8"]}], "flows[0].from[0]", "host bits"),
        ([{"name": "x", "port": 25, "from": ["nohost"]}], "hostvars[nohost].mailstack_address", "not set"),
        ([{"name": "x", "port": 25, "from": "mx"}], "flows[0].from", "any"),
        ([{"name": "x", "port": 25, "to": "y"}], "flows[0]", "unknown keys to"),
        ({"name": "x"}, "flows", "list"),
    ],
)
def test_bad_flows_are_refused_naming_the_entry(flows, path, message):
    with pytest.raises(InputError, match=message) as err:
        nft_rules(flows, HOSTVARS)
    assert err.value.path == path
