"""The systemd sandbox block every stack daemon shares."""

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils.systemd_sandbox import systemd_sandbox
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError


def directives(text):
    return dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))


def test_baseline_with_seccomp_and_nothing_else():
    found = directives(systemd_sandbox({}, True))
    assert found["NoNewPrivileges"] == "yes" and found["ProtectSystem"] == "strict"
    assert found["CapabilityBoundingSet"] == ""
    assert found["SystemCallFilter"] == "@system-service" and found["MemoryDenyWriteExecute"] == "yes"
    assert found["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert "ReadWritePaths" not in found and "UMask" not in found


def test_a_daemons_needs_are_added_to_the_baseline():
    text = systemd_sandbox(
        {
            "read_write_paths": ["/run/a", "/var/lib/b"],
            "capabilities": ["CAP_SETUID", "CAP_SETGID"],
            "address_families": ["AF_UNIX"],
            "umask": "0077",
        },
        True,
    )
    found = directives(text)
    assert found["ReadWritePaths"] == "/run/a /var/lib/b"
    assert found["CapabilityBoundingSet"] == "CAP_SETUID CAP_SETGID"
    assert found["RestrictAddressFamilies"] == "AF_UNIX"
    assert found["UMask"] == "0077"


def test_inside_a_container_the_seccomp_part_is_left_out_and_said_so():
    text = systemd_sandbox({"read_write_paths": ["/run/a"]}, False)
    found = directives(text)
    assert "SystemCallFilter" not in found and "RestrictAddressFamilies" not in found
    assert found["ProtectSystem"] == "strict" and found["ReadWritePaths"] == "/run/a"
    assert "Seccomp filters cannot be installed inside this container" in text


@pytest.mark.parametrize(
    ("needs", "seccomp"),
    [
        ({"read_write_paths": ["run/relative"]}, True),
        ({"read_write_paths": ["/run/a b"]}, True),
        ({"read_write_paths": ["/run/a\nExecStartPre=/bin/sh"]}, True),
        ({"read_write_paths": "/run/a"}, True),
        ({"capabilities": ["CAP_SYS_ADMIN\n"]}, True),
        ({"capabilities": ["cap_setuid"]}, True),
        ({"address_families": ["AF_PACKET"]}, True),
        ({"umask": 77}, True),
        ({"umask": "0778"}, True),
        ({"private_network": True}, True),
        ([], True),
        ({}, "yes"),
    ],
)
def test_refuses_what_would_weaken_or_break_the_unit(needs, seccomp):
    with pytest.raises(InputError):
        systemd_sandbox(needs, seccomp)
