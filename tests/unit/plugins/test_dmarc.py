"""The SPF and DMARC records of the stack's domains (module_utils/dmarc.py)."""

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dmarc
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def test_records_disown_every_host_but_the_senders_and_ask_for_strict_alignment():
    records = dmarc.sender_policy_records(
        ["192.0.2.25", "2001:db8::0:25", "192.0.2.25"], "reject", ["postmaster@example.org"]
    )
    assert records == [
        {"name": "@", "type": "TXT", "value": "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"},
        {
            "name": "_dmarc",
            "type": "TXT",
            "value": "v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; rua=mailto:postmaster@example.org",
        },
    ]


def test_a_phased_roll_out_without_reports_is_one_value():
    assert dmarc.dmarc_record("none", []) == "v=DMARC1; p=none; sp=none; adkim=s; aspf=s"
    assert dmarc.dmarc_record("quarantine", ["a@example.org", "b@example.net"]).endswith(
        "rua=mailto:a@example.org,mailto:b@example.net"
    )


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        ([], "non-empty list"),
        ("192.0.2.25", "non-empty list"),
        (["mx.example.org"], "not an IP address"),
        (["192.0.2.0/24"], "not an IP address"),
        (["192.0.2.25 -all include:evil.example"], "not an IP address"),
        ([None], "not an IP address"),
    ],
)
def test_spf_refuses_what_is_not_a_list_of_addresses(addresses, message):
    with pytest.raises(InputError, match=message):
        dmarc.spf_record(addresses)


@pytest.mark.parametrize(
    ("policy", "addresses", "message"),
    [
        ("Reject", [], "must be one of"),
        ("reject; rua=mailto:x@evil.example", [], "must be one of"),
        (None, [], "must be one of"),
        ("reject", "postmaster@example.org", "must be a list"),
        ("reject", ["postmaster"], "not a valid mail address"),
        ("reject", ["a,mailto:b@evil.example"], "not a valid mail address|split"),
        ("reject", ["a!10m@example.org"], "split"),
        ("reject", ["a@example.org\n"], "control"),
    ],
)
def test_dmarc_refuses_unknown_policies_and_addresses_that_would_split(policy, addresses, message):
    with pytest.raises(InputError, match=message):
        dmarc.dmarc_record(policy, addresses)
