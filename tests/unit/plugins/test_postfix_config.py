import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.filter.postfix import (
    postfix_cidr_map,
    postfix_main_cf,
    postfix_master_cf,
)
from ansible_collections.zerotrust.mailstack.plugins.module_utils import postfix_config as pc
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

KNOWN = ["smtpd_banner", "disable_vrfy_command", "smtpd_tls_security_level", "mynetworks", "smtpd_sasl_auth_enable"]


def test_main_cf_renders_sorted_typed_values():
    lines = pc.render_main_cf(
        {
            "smtpd_banner": "$myhostname ESMTP",
            "disable_vrfy_command": True,
            "mynetworks": ["127.0.0.0/8", "[::1]/128"],
            "smtpd_tls_security_level": None,
        },
        KNOWN,
    )
    assert lines == [
        "disable_vrfy_command = yes",
        "mynetworks = 127.0.0.0/8, [::1]/128",
        "smtpd_banner = $myhostname ESMTP",
    ]


@pytest.mark.parametrize(
    "params, path, message",
    [
        ({"smtpd_banner": "ok\nrelay_domains = *"}, "postfix_main_cf.smtpd_banner", "control character"),
        ({"smtpd_banner": "ok\rx"}, "postfix_main_cf.smtpd_banner", "control character"),
        ({"smtpd_banner": "ok\x00"}, "postfix_main_cf.smtpd_banner", "control character"),
        ({"mynetworks": ["127.0.0.0/8", "10.0.0.0/8\nrelay_domains = *"]}, "postfix_main_cf.mynetworks[1]", "control"),
        ({"smtpd banner": "x"}, "postfix_main_cf.smtpd banner", "not a Postfix parameter name"),
        ({"Smtpd_banner": "x"}, "postfix_main_cf.Smtpd_banner", "not a Postfix parameter name"),
        ({"relay_domains\n": "x"}, "postfix_main_cf.relay_domains\n", "control character"),
        ({"smtpd_banner": {"nested": 1}}, "postfix_main_cf.smtpd_banner", "must be a string"),
        ({"no_such_parameter": "x"}, "postfix_main_cf.no_such_parameter", "not a parameter this Postfix knows"),
    ],
)
def test_main_cf_refuses_injection_and_bad_keys(params, path, message):
    with pytest.raises(InputError, match=message) as err:
        pc.render_main_cf(params, KNOWN)
    assert err.value.path == path


def test_main_cf_accepts_service_overrides_of_known_parameters():
    assert pc.render_main_cf({"submission_smtpd_tls_security_level": "encrypt"}, KNOWN)
    with pytest.raises(InputError):
        pc.render_main_cf({"submission_bogus": "x"}, KNOWN)


def test_main_cf_without_known_list_checks_syntax_only():
    assert pc.render_main_cf({"anything_goes": 1}) == ["anything_goes = 1"]


def test_main_cf_must_be_a_mapping():
    with pytest.raises(InputError, match="mapping"):
        pc.render_main_cf(["smtpd_banner = x"])


SUBMISSION = {
    "type": "inet",
    "private": False,
    "chroot": True,
    "command": "smtpd",
    "options": {
        "smtpd_tls_security_level": "encrypt",
        "smtpd_sasl_auth_enable": True,
        "smtpd_banner": "$myhostname ready",
    },
}


def test_master_cf_renders_entries_and_options():
    lines = pc.render_master_cf(
        {
            "submission": SUBMISSION,
            "pickup": {"type": "unix", "private": False, "wakeup": 60, "maxproc": 1, "command": "pickup"},
        },
        KNOWN,
    )
    assert lines[0].split() == ["submission", "inet", "n", "-", "y", "-", "-", "smtpd"]
    assert "  -o smtpd_sasl_auth_enable=yes" in lines
    assert "  -o smtpd_tls_security_level=encrypt" in lines
    assert "  -o { smtpd_banner = $myhostname ready }" in lines
    assert lines[-1].split() == ["pickup", "unix", "n", "-", "-", "60", "1", "pickup"]


def test_master_cf_null_entry_removes_a_service():
    assert pc.render_master_cf({"submission": None}) == []


@pytest.mark.parametrize(
    "entry, path, message",
    [
        ({"type": "tcp", "command": "smtpd"}, "postfix_master_cf.smtp.type", "must be one of"),
        ({"type": "inet"}, "postfix_master_cf.smtp.command", "single word"),
        ({"type": "inet", "command": "smtpd -v"}, "postfix_master_cf.smtp.command", "single word"),
        ({"type": "inet", "command": "smtpd\n-o relay=x"}, "postfix_master_cf.smtp.command", "control"),
        ({"type": "inet", "command": "smtpd", "args": ["a b"]}, "postfix_master_cf.smtp.args[0]", "one word"),
        ({"type": "inet", "command": "smtpd", "chroot": "maybe"}, "postfix_master_cf.smtp.chroot", "y, n, -"),
        ({"type": "inet", "command": "smtpd", "listen": 25}, "postfix_master_cf.smtp", "unknown fields listen"),
        (
            {"type": "inet", "command": "smtpd", "options": {"smtpd_banner": "x}"}},
            "postfix_master_cf.smtp.options.smtpd_banner",
            "braces",
        ),
        (
            {"type": "inet", "command": "smtpd", "options": {"smtpd_banner": "a\nb"}},
            "postfix_master_cf.smtp.options.smtpd_banner",
            "control",
        ),
        (
            {"type": "inet", "command": "smtpd", "options": {"bogus": "x"}},
            "postfix_master_cf.smtp.options.bogus",
            "knows",
        ),
        ({"type": "inet", "command": "smtpd", "options": ["x"]}, "postfix_master_cf.smtp.options", "mapping"),
        ({"name": "smtp d", "type": "inet", "command": "smtpd"}, "postfix_master_cf.smtp.name", "service name"),
        ("inet smtpd", "postfix_master_cf.smtp", "mapping"),
    ],
)
def test_master_cf_refuses_wrong_shapes(entry, path, message):
    with pytest.raises(InputError, match=message) as err:
        pc.render_master_cf({"smtp": entry}, KNOWN)
    assert err.value.path == path


def test_master_cf_service_names():
    for name in ("smtp", "submission", "127.0.0.1:10025", "[::1]:10025", "465", "mx.corp.example:smtp"):
        assert pc.render_master_cf({"s": {"name": name, "type": "inet", "command": "smtpd"}})


def test_filters_raise_ansible_errors_naming_the_key():
    assert postfix_main_cf({"smtpd_banner": "x"}) == "smtpd_banner = x"
    with pytest.raises(AnsibleFilterError, match="postfix_main_cf.smtpd_banner"):
        postfix_main_cf({"smtpd_banner": "x\ny"})
    with pytest.raises(AnsibleFilterError, match="postfix_master_cf.smtp.type"):
        postfix_master_cf({"smtp": {"type": "bad", "command": "smtpd"}})


def test_cidr_map_gives_each_address_and_network_the_result():
    assert pc.render_cidr_map(["192.0.2.10", "198.51.100.0/24", "2001:db8::1", "[2001:db8::]/32"], "permit", "v") == [
        "192.0.2.10/32 permit",
        "198.51.100.0/24 permit",
        "2001:db8::1/128 permit",
        "2001:db8::/32 permit",
    ]


@pytest.mark.parametrize(
    "networks, result, path",
    [
        (["192.0.2.1/24"], "permit", "v[0]"),
        (["mx.example"], "permit", "v[0]"),
        (["192.0.2.1\n0.0.0.0/0 permit"], "permit", "v[0]"),
        ([7], "permit", "v[0]"),
        (["192.0.2.1"], "permit\nreject", "v (result)"),
        ("192.0.2.1", "permit", "v"),
    ],
)
def test_cidr_map_refuses_what_is_not_an_address_or_network(networks, result, path):
    with pytest.raises(InputError) as error:
        pc.render_cidr_map(networks, result, "v")
    assert error.value.path == path


def test_cidr_map_filter_names_itself_in_errors():
    assert postfix_cidr_map(["192.0.2.1"], "permit", "v") == "192.0.2.1/32 permit"
    with pytest.raises(AnsibleFilterError, match=r"^zerotrust.mailstack.postfix_cidr_map: v\[0\]: "):
        postfix_cidr_map(["nonsense"], "permit", "v")
