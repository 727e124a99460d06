import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import validation as v


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
