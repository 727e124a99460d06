import pathlib

import pytest
import yaml
from ansible_collections.zerotrust.mailstack.plugins.module_utils import validation as v

ROLES = pathlib.Path(__file__).resolve().parents[3] / "roles"


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "ok\n", "\x7f"])
def test_control_characters_are_refused(value):
    with pytest.raises(v.InputError, match="control character"):
        v.check_text(value, "postfix_banner")


def test_error_names_the_variable():
    with pytest.raises(v.InputError) as err:
        v.check_domain("bad_domain", "mailstack_domain")
    assert str(err.value).startswith("mailstack_domain: ")


@pytest.mark.parametrize("value", ["corp.example", "mx1.corp.example", "xn--bcher-kva.example", "a.b.c.example."])
def test_valid_domains(value):
    assert v.check_domain(value, "d") == value


@pytest.mark.parametrize(
    "value",
    ["corp", "-corp.example", "corp-.example", "co rp.example", "corp..example", "a.123", "a" * 64 + ".example", ""],
)
def test_invalid_domains(value):
    with pytest.raises(v.InputError):
        v.check_domain(value, "d")


def test_non_string_refused():
    with pytest.raises(v.InputError, match="must be a string"):
        v.check_hostname(42, "h")


@pytest.mark.parametrize(
    "value", ["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "127.0.0.1/32", "[::1]/128", "[2001:db8::]/32"]
)
def test_valid_cidrs(value):
    assert v.check_cidr(value, "c") == value


@pytest.mark.parametrize(
    "value", ["10.0.0.1/8", "10.0.0.0", "300.0.0.0/8", "10.0.0.0/33", "fe80::/129", "any", "[10.0.0.0]/8x"]
)
def test_invalid_cidrs(value):
    with pytest.raises(v.InputError):
        v.check_cidr(value, "c")


@pytest.mark.parametrize("value", ["alice@corp.example", "a.b+tag@corp.example"])
def test_valid_email(value):
    assert v.check_email(value, "e") == value


@pytest.mark.parametrize("value", ["alice", "@corp.example", "alice@corp", "a..b@corp.example", "al ice@corp.example"])
def test_invalid_email(value):
    with pytest.raises(v.InputError):
        v.check_email(value, "e")


@pytest.mark.parametrize("value", [0, 65536, "25", True, -1])
def test_invalid_ports(value):
    with pytest.raises(v.InputError):
        v.check_port(value, "p")


def test_ip():
    assert v.check_ip("2001:db8::1", "i")
    with pytest.raises(v.InputError):
        v.check_ip("10.0.0.256", "i")


def test_nested_control_characters_report_their_path():
    value = {"zones": [{"name": "ok.example"}, {"records": ["fine", "bad\ninjected"]}]}
    with pytest.raises(v.InputError) as err:
        v.check_no_control_chars(value, "dns")
    assert err.value.path == "dns.zones[1].records[1]"


def test_control_characters_in_keys_are_refused():
    with pytest.raises(v.InputError, match=r"\(key\)"):
        v.check_no_control_chars({"smtpd_banner\nrelay": "x"}, "postfix_main_cf")


def test_format_paths_descend_lists_and_mappings():
    values = {
        "dns_zones": [{"name": "corp.example"}, {"name": "outside.example", "nets": ["10.0.0.0/8"]}],
        "peers": {"a": "192.0.2.1", "b": "192.0.2.2"},
    }
    v.validate_formats(values, {"dns_zones[].name": "domain", "dns_zones[].nets[]": "cidr", "peers{}": "ip"})
    values["dns_zones"][1]["name"] = "not a domain"
    with pytest.raises(v.InputError) as err:
        v.validate_formats(values, {"dns_zones[].name": "domain"})
    assert err.value.path == "dns_zones[1].name"


def test_format_paths_reach_mapping_keys():
    values = {"limits": {"alice": 3, "bob": 10}}
    v.validate_formats(values, {"limits{key}": "login", "limits{}": "positive"})
    with pytest.raises(v.InputError) as err:
        v.validate_formats({"limits": {"Alice Smith": 3}}, {"limits{key}": "login"})
    assert err.value.path == "limits (key 'Alice Smith')"
    with pytest.raises(v.InputError, match="must be a mapping"):
        v.validate_formats({"limits": ["alice"]}, {"limits{key}": "login"})


@pytest.mark.parametrize("value", [0, -1, True, "5", 2.5])
def test_positive_refuses_zero_negatives_and_non_integers(value):
    with pytest.raises(v.InputError, match="at least 1"):
        v.validate_formats({"limit": value}, {"limit": "positive"})


@pytest.mark.parametrize("value", ["unix:ratelimit/policy", "inet:imap.corp.example:12345", "inet:[::1]:10031"])
def test_valid_sockets(value):
    v.validate_formats({"service": value}, {"service": "socket"})


@pytest.mark.parametrize(
    "value", ["unix:x, permit", "inet:host", "tcp:host:25", "unix:", "inet:host:25 permit", "unix:a\nb"]
)
def test_invalid_sockets(value):
    with pytest.raises(v.InputError, match="is not unix"):
        v.validate_formats({"service": value}, {"service": "socket"})


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("socketmap:inet:127.0.0.1:8461:postfix", True),
        ("hash:/etc/postfix/tls_policy", True),
        ("texthash:/etc/postfix/x, permit", False),
        ("hash:/a b", False),
        ("/etc/postfix/x", False),
    ],
)
def test_tables(value, valid):
    if valid:
        v.validate_formats({"maps": [value]}, {"maps[]": "table"})
    else:
        with pytest.raises(v.InputError, match="not a Postfix table"):
            v.validate_formats({"maps": [value]}, {"maps[]": "table"})


def test_format_path_type_mismatch_is_an_error():
    with pytest.raises(v.InputError, match="must be a list"):
        v.validate_formats({"nets": "10.0.0.0/8"}, {"nets[]": "cidr"})


def test_absent_variables_are_left_to_the_argument_spec():
    v.validate_formats({"other": 1}, {"nets[]": "cidr"})


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown format"):
        v.validate_formats({"x": "y"}, {"x": "colour"})
    with pytest.raises(ValueError, match="must start"):
        v.parse_format_path("[].x")


def test_validate_inputs_checks_everything():
    with pytest.raises(v.InputError, match="control character"):
        v.validate_inputs({"base_motd": "hi\nthere"}, {})
    with pytest.raises(v.InputError, match="CIDR"):
        v.validate_inputs({"nets": ["10.0.0.1/8"]}, {"nets[]": "cidr"})


def test_a_format_for_an_undeclared_variable_is_an_error():
    # A misspelt name in a role's formats would otherwise skip its check silently.
    with pytest.raises(v.InputError, match="netz: .*not declared"):
        v.validate_inputs({"nets": ["10.0.0.0/8"]}, {"netz[]": "cidr"}, declared={"nets": {}})
    assert v.validate_inputs({"nets": ["10.0.0.0/8"]}, {"nets[]": "cidr"}, declared={"nets": {}}) is None


# --- validators with a trailing newline (ZT-IN-01) ----------------------------------
# `$` also matches before a final newline: "alice\n" passed ^...$ patterns.


@pytest.mark.parametrize(
    "check, value",
    [
        ("check_login", "alice"),
        ("check_socket", "unix:/run/milter.sock"),
        ("check_socket", "inet:127.0.0.1:8891"),
        ("check_table", "texthash:/etc/postfix/tls_policy"),
        ("check_hostname", "mx.corp.example"),
        ("check_email", "alice@corp.example"),
        ("check_ldaps_uri", "ldaps://ldap.corp.example"),
        ("check_ldap_uri", "ldap://ldap.corp.example"),
        ("check_abspath", "/var/vmail"),
    ],
)
def test_a_trailing_newline_is_refused(check, value):
    check = getattr(v, check)
    assert check(value, "x") == value
    with pytest.raises(v.InputError):
        check(value + "\n", "x")


# --- directory URIs (ZT-LDAP-08) -------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["ldaps://ldap.corp.example", "ldaps://ldap.corp.example:636", "ldaps://10.0.0.5", "ldaps://[2001:db8::5]:636"],
)
def test_single_ldaps_uri_is_accepted(value):
    assert v.check_ldaps_uri(value, "postfix_ldap_uri") == value


@pytest.mark.parametrize(
    "value, reason",
    [
        ("ldap://ldap.corp.example", "ldaps://"),  # the service password would cross in clear
        ("ldaps://ldap.corp.example ldap://evil.example", "one"),  # a second URI after a space
        ("ldaps://ldap.corp.example,ldap://evil.example", "one"),
        ("ldaps://user@ldap.corp.example", "one"),
        ("ldaps://ldap.corp.example:0", "port"),
        ("ldaps://ldap.corp.example:70000", "port"),
        ("ldaps://ldap.corp.example/dc=x??sub", "one"),
        ("ldapi:///", "ldaps://"),
        ("", "ldaps://"),
        (["ldaps://ldap.corp.example"], "string"),
    ],
)
def test_cleartext_or_several_ldap_uris_are_refused(value, reason):
    with pytest.raises(v.InputError, match=reason):
        v.check_ldaps_uri(value, "postfix_ldap_uri")


def test_ldap_uri_allows_ldap_only_where_starttls_is_forced():
    assert v.check_ldap_uri("ldap://ldap.corp.example:389", "dovecot_ldap_uri")
    for value in ("ldaps://a.example ldap://b.example", "ldapi:///", "ldap://a.example b.example"):
        with pytest.raises(v.InputError, match="dovecot_ldap_uri"):
            v.check_ldap_uri(value, "dovecot_ldap_uri")


def test_optional_format_accepts_only_an_empty_string():
    v.validate_formats({"postfix_ldap_uri": ""}, {"postfix_ldap_uri": "ldaps_uri?"})
    with pytest.raises(v.InputError, match="postfix_ldap_uri"):
        v.validate_formats({"postfix_ldap_uri": "ldap://x.example"}, {"postfix_ldap_uri": "ldaps_uri?"})


@pytest.mark.parametrize("value", ["/var/vmail", "/srv/mail/vmail", "/"])
def test_absolute_paths_are_accepted(value):
    assert v.check_abspath(value, "dovecot_mail_root") == value


@pytest.mark.parametrize(
    "value",
    ["/var/vmail LD_PRELOAD=/tmp/x.so", "var/vmail", "/var/vmail\t", "/var/../etc", '/var/v"mail', "/var/%{x}", ""],
)
def test_relative_or_spaced_paths_are_refused(value):
    with pytest.raises(v.InputError, match="dovecot_mail_root"):
        v.check_abspath(value, "dovecot_mail_root")


# --- the roles use these checks ---------------------------------------------------------


def _role_formats(role):
    tasks = yaml.safe_load((ROLES / role / "tasks" / "validate.yml").read_text())
    return next(
        t["zerotrust.mailstack.validate_inputs"]["formats"] for t in tasks if "zerotrust.mailstack.validate_inputs" in t
    )


@pytest.mark.parametrize(
    "role, name, value",
    [
        ("postfix", "postfix_ldap_uri", "ldap://ldap.corp.example"),
        ("postfix", "postfix_ldap_uri", "ldaps://ldap.corp.example ldaps://evil.example"),
        ("dovecot", "dovecot_ldap_uri", "ldaps://ldap.corp.example ldap://evil.example"),
        ("dovecot", "dovecot_mail_root", "/var/vmail LD_PRELOAD=/tmp/x.so"),
    ],
)
def test_roles_refuse_injected_uris_and_paths(role, name, value):
    with pytest.raises(v.InputError, match=name):
        v.validate_inputs({name: value}, _role_formats(role))


@pytest.mark.parametrize("validate", sorted(ROLES.glob("*/tasks/validate.yml")), ids=lambda p: p.parts[-3])
def test_every_role_checks_only_declared_variables(validate):
    role = validate.parts[-3]
    options = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]
    v.check_declared(_role_formats(role), options.get("options") or {})


@pytest.mark.parametrize("value", ["192.0.2.1", "2001:db8::1", "192.0.2.0/24", "2001:db8::/32"])
def test_addresses_or_networks(value):
    assert v.check_address_or_network(value, "a") == value


@pytest.mark.parametrize("value", ["192.0.2.1/24", "192.0.2.1,10.0.0.1", "host.example", "192.0.2.1\nDenyUsers x", 7])
def test_not_addresses_or_networks(value):
    with pytest.raises(v.InputError, match="a: "):
        v.check_address_or_network(value, "a")


@pytest.mark.parametrize(
    "value",
    [
        "zen.example.org",
        "zen.example.org*3",
        "zen.example.org=127.0.0.[2..11]*3",
        "bl.example=127.0.0.[2;4]",
        "wl.example*-2",
    ],
)
def test_valid_dnsbl_sites(value):
    v.validate_formats({"sites": [value]}, {"sites[]": "dnsbl_site"})


@pytest.mark.parametrize(
    "value",
    [
        "zen",
        "zen.example.org*",
        "zen.example.org=127.0.0",
        "zen.example.org=127.0.0.2\n*3",
        "a b.example",
        "x.example*3,y",
    ],
)
def test_invalid_dnsbl_sites(value):
    with pytest.raises(v.InputError) as err:
        v.validate_formats({"sites": [value]}, {"sites[]": "dnsbl_site"})
    assert err.value.path == "sites[0]"


@pytest.mark.parametrize(
    "value, valid", [("X-Mailstack-Impersonation", True), ("X-A\nB", False), ("X A", False), ("X:", False), ("", False)]
)
def test_header_names(value, valid):
    if valid:
        v.validate_formats({"h": value}, {"h": "header_name"})
    else:
        with pytest.raises(v.InputError, match="not a header name"):
            v.validate_formats({"h": value}, {"h": "header_name"})
