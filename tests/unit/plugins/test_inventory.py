import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import inventory as inv
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

HOSTVARS = {
    "mx": {"ansible_default_ipv4": {"address": "10.89.70.5"}},
    "ldap": {"mailstack_address": "2001:db8::30", "mailstack_hostname": "directory"},
    "bad": {"mailstack_address": "10.0.0.1\nevil"},
    "factless": {},
}


def test_host_records_from_facts_and_overrides():
    assert inv.host_records(["mx", "ldap"], HOSTVARS) == [
        {"name": "mx", "type": "A", "value": "10.89.70.5"},
        {"name": "directory", "type": "AAAA", "value": "2001:db8::30"},
    ]


def test_bad_address_names_the_host_variable():
    with pytest.raises(InputError) as err:
        inv.host_records(["bad"], HOSTVARS)
    assert err.value.path == "hostvars[bad].mailstack_address"


def test_missing_address_is_explained():
    with pytest.raises(InputError, match="no ansible_default_ipv4"):
        inv.host_records(["factless"], HOSTVARS)


def test_server_sans():
    assert inv.server_sans("mx", HOSTVARS, "corp.example", ["mail.corp.example", "mx"]) == [
        "DNS:mx.corp.example",
        "DNS:mx",
        "DNS:mail.corp.example",
        "IP:10.89.70.5",
    ]


def test_server_sans_refuse_bad_names():
    with pytest.raises(InputError, match="pki_extra_sans"):
        inv.server_sans("mx", HOSTVARS, "corp.example", ["bad name"])
    with pytest.raises(InputError, match="mailstack_domain"):
        inv.server_sans("mx", HOSTVARS, "corp")


def test_accounts_with_login_shell():
    passwd = {
        "root": ["x", "0", "0", "", "/root", "/bin/bash"],
        "daemon": ["x", "1", "1", "", "/", "/usr/sbin/nologin"],
        "sync": ["x", "4", "65534", "", "/bin", "/bin/sync"],
        "postfix": ["x", "101", "101", "", "/", "/bin/sh"],
        "alice": ["x", "1000", "1000", "", "/home/alice", "/bin/bash"],
        "nobody": ["x", "65534", "65534", "", "/", "/usr/sbin/nologin"],
    }
    assert inv.accounts_with_login_shell(passwd) == ["postfix", "sync"]
    assert inv.accounts_with_login_shell(passwd, exempt=["root", "sync"]) == ["postfix"]


# The production-shaped inventory: host names unlike the group names.
PROD_GROUPS = {
    "ldap": ["ldap1.corp.example", "ldap2.corp.example"],
    "imap": ["imap1.corp.example"],
    "mx": ["mx1", "mx2"],
    "filter": ["filter1.corp.example"],
}
PROD_HOSTVARS = {
    "ldap1.corp.example": {"mailstack_hostname": "ldap1"},
    "ldap2.corp.example": {"mailstack_hostname": "ldap2"},
    "imap1.corp.example": {"mailstack_hostname": "imap1", "dovecot_lmtp_port": 2424},
    "mx1": {"mailstack_address": "192.0.2.25"},
    "mx2": {"ansible_default_ipv4": {"address": "192.0.2.26"}},
    "filter1.corp.example": {"mailstack_hostname": "filter1"},
}


def test_host_fqdn_uses_the_short_name():
    assert inv.host_fqdn("ldap1.corp.example", PROD_HOSTVARS, "corp.example") == "ldap1.corp.example"
    assert inv.host_fqdn("mx1", PROD_HOSTVARS, "corp.example") == "mx1.corp.example"


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("ldap", "ldaps://ldap1.corp.example"),
        ("lmtp", "lmtp:inet:imap1.corp.example:2424"),
        ("mx", "mx1.corp.example"),
        ("content_filter", "filter1.corp.example"),
    ],
)
def test_endpoints_come_from_the_providing_group(service, expected):
    assert inv.stack_endpoint(service, PROD_GROUPS, PROD_HOSTVARS, "corp.example") == expected


def test_every_mx_is_listed():
    assert inv.stack_endpoints("mx", PROD_GROUPS, PROD_HOSTVARS, "corp.example") == [
        "mx1.corp.example",
        "mx2.corp.example",
    ]


def test_host_addresses_follow_the_inventory_order():
    assert inv.host_addresses(["mx2", "mx1"], PROD_HOSTVARS) == ["192.0.2.26", "192.0.2.25"]


@pytest.mark.parametrize("hosts", ["mx1", None, {"mx1": 1}])
def test_host_addresses_take_a_list_of_hosts(hosts):
    with pytest.raises(InputError, match="hosts"):
        inv.host_addresses(hosts, PROD_HOSTVARS)


def test_hosts_without_address_are_those_only_facts_can_place():
    hostvars = dict(PROD_HOSTVARS, **{"ns1.corp.example": {"mailstack_address": ""}})
    hosts = ["mx1", "filter1.corp.example", "ns1.corp.example", "unknown"]
    assert inv.hosts_without_address(hosts, hostvars) == ["filter1.corp.example", "ns1.corp.example", "unknown"]
    assert inv.hosts_without_address(["mx2", "mx1"], PROD_HOSTVARS) == ["mx2"]


@pytest.mark.parametrize("hosts", ["mx1", None, {"mx1": 1}])
def test_hosts_without_address_take_a_list_of_hosts(hosts):
    with pytest.raises(InputError, match="hosts"):
        inv.hosts_without_address(hosts, PROD_HOSTVARS)


def test_a_host_without_an_address_is_named():
    with pytest.raises(InputError, match=r"hostvars\[filter1.corp.example\]"):
        inv.host_addresses(["filter1.corp.example"], PROD_HOSTVARS)


def test_lmtp_port_defaults_to_the_dovecot_role_default():
    hostvars = dict(PROD_HOSTVARS, **{"imap1.corp.example": {"mailstack_hostname": "imap1"}})
    assert inv.stack_endpoint("lmtp", PROD_GROUPS, hostvars, "corp.example") == "lmtp:inet:imap1.corp.example:24"


def test_the_contract_port_is_the_dovecot_default():
    import pathlib

    import yaml

    defaults = pathlib.Path(__file__).resolve().parents[3] / "roles" / "dovecot" / "defaults" / "main.yml"
    assert yaml.safe_load(defaults.read_text())["dovecot_lmtp_port"] == inv.LMTP_PORT


def test_no_provider_gives_no_endpoint():
    assert inv.stack_endpoint("ldap", {"mx": ["mx1"]}, PROD_HOSTVARS, "corp.example") == ""
    assert inv.stack_endpoints("mx", {}, PROD_HOSTVARS, "corp.example") == []


def test_unknown_service_is_an_error():
    with pytest.raises(InputError, match="'smtp' is not one of"):
        inv.stack_endpoint("smtp", PROD_GROUPS, PROD_HOSTVARS, "corp.example")
