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
