"""The SSH policy filters: algorithms a host offers, and drift of what sshd applies."""

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils.sshd_policy import sshd_drift, sshd_offered
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

POLICY_KEX = ["mlkem768x25519-sha256", "sntrup761x25519-sha512@openssh.com", "curve25519-sha256"]


def test_keeps_offered_algorithms_in_the_policy_order():
    query = ["kexalgorithms=diffie-hellman-group14-sha1 curve25519-sha256 sntrup761x25519-sha512@openssh.com "]
    assert sshd_offered(query, {"kexalgorithms": POLICY_KEX}) == {
        "kexalgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256"
    }


def test_a_weak_algorithm_the_host_offers_is_never_added():
    query = ["ciphers=3des-cbc aes128-cbc aes256-gcm@openssh.com"]
    assert sshd_offered(query, {"ciphers": ["aes256-gcm@openssh.com"]}) == {"ciphers": "aes256-gcm@openssh.com"}


def test_no_offered_algorithm_is_an_error():
    with pytest.raises(InputError, match="kexalgorithms.*offers none"):
        sshd_offered(["kexalgorithms=diffie-hellman-group1-sha1"], {"kexalgorithms": POLICY_KEX})


def test_a_keyword_missing_from_the_query_is_an_error():
    with pytest.raises(InputError, match="macs"):
        sshd_offered(["ciphers=aes256-gcm@openssh.com"], {"macs": ["hmac-sha2-512-etm@openssh.com"]})


EFFECTIVE = [
    "permitrootlogin no",
    "passwordauthentication no",
    "allowgroups mailstack-deploy",
    "allowgroups admins",
    "hostkey /etc/ssh/ssh_host_ed25519_key",
    "loglevel VERBOSE",
]


def test_no_drift_when_sshd_applies_the_policy():
    policy = {
        "permitrootlogin": "no",
        "passwordauthentication": "no",
        "allowgroups": "mailstack-deploy admins",
        "loglevel": "VERBOSE",
    }
    assert sshd_drift(EFFECTIVE, policy) == []


@pytest.mark.parametrize(
    ("keyword", "wanted"),
    [
        ("permitrootlogin", "prohibit-password"),
        ("allowgroups", "mailstack-deploy"),
        ("hostkey", "/etc/ssh/ssh_host_rsa_key"),
        ("maxauthtries", "3"),
    ],
)
def test_drift_names_the_keyword_and_both_values(keyword, wanted):
    (line,) = sshd_drift(EFFECTIVE, {keyword: wanted})
    assert line.startswith(keyword + ": wants %r" % wanted)


def test_a_second_host_key_is_drift():
    effective = EFFECTIVE + ["hostkey /etc/ssh/ssh_host_ecdsa_key"]
    assert sshd_drift(effective, {"hostkey": "/etc/ssh/ssh_host_ed25519_key"})
