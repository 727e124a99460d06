import base64
import os
import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.filter.dkim import FilterModule, dkim_txt_value, opendkim_conf
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dkim, dns_zone
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "opendkim")

# What opendkim-genkey 2.11 (Debian 13) writes for -b 2048 -s mail -d corp.example.
GENKEY_TXT = (
    'mail._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=rsa; "\n'
    '\t  "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAs4nFFh3O3/8eTvEW6ht/SeBnBHue7DiaP2YyDRtEUwdNO2rUCDKRQR1AsUt0lJZ'
    "uEhlACX9BOeChN4py5zxLaWHzuFeV84M1LM975GKAuU5skC2fE5idCUfXgOXs2lA4NbTjPNPEaXkfcMOHHrzlzZ+5JiFglcQKL6mhGwbf2+v8ILWN"
    'Ny3eIZ3sqioeYzjdb5TbvbYE1881aF"\n'
    '\t  "uJTsoLGB/U/4GjG09KXO/BI6KIl+RV7NaqFpFvrJZ+jfAFlMaXUpls+QQp0WvMI4B1J21h5vDdC+N4OVY7EamByV5D2U1Rs0d5'
    'Zrcp/qTqjyBcuyazOXgtOrFuecxRHdmUX8wRnwIDAQAB" )  ; ----- DKIM key mail for corp.example\n'
)
CHUNK = re.compile(r'"([^"]*)"')


def genkey_txt(bits, selector="mail", head="v=DKIM1; h=sha256; k=rsa; "):
    """A .txt file in opendkim-genkey's layout for a fresh key (strings cut where genkey cuts them)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    data = "p=" + base64.b64encode(der).decode()
    pieces = [data[i : i + 250] for i in range(0, len(data), 250)]
    body = "\n\t  ".join('"%s"' % piece for piece in [head, *pieces])
    return "%s._domainkey\tIN\tTXT\t( %s )  ; ----- DKIM key %s for corp.example\n" % (selector, body, selector), der


def unquote(value):
    chunks = CHUNK.findall(value)
    # Nothing but quoted strings separated by single spaces.
    assert value == " ".join('"%s"' % chunk for chunk in chunks)
    return chunks


def test_genkey_file_gives_the_canonical_value():
    value = dkim.genkey_value(GENKEY_TXT)
    assert value.startswith("v=DKIM1; h=sha256; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAs4nFFh3O3")
    assert value.endswith("Rs0d5Zrcp/qTqjyBcuyazOXgtOrFuecxRHdmUX8wRnwIDAQAB")
    assert " " not in value.partition("p=")[2]
    # The comment after the closing parenthesis is not part of the record.
    assert "-----" not in value and "corp.example" not in value


def test_plain_value_fits_the_zone_modules_txt_strings():
    # The dns role's zone module quotes the plain value and cuts it into
    # 255-octet strings; joined again they must give back the value.
    for text in (GENKEY_TXT, genkey_txt(4096)[0]):
        value = dkim.genkey_value(text)
        assert '"' not in value and "\\" not in value
        strings = unquote(dns_zone.format_rdata("TXT", value, "records[0].value"))
        assert len(strings) >= 2
        assert all(0 < len(string.encode()) <= 255 for string in strings)
        assert "".join(strings) == value


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_generated_keys_round_trip(bits):
    text, der = genkey_txt(bits)
    # genkey writes the head and the key as separate quoted strings and cuts a
    # long key further; they are joined without a gap.
    assert len(CHUNK.findall(text)) >= (3 if bits > 1024 else 2)
    plain = dkim.genkey_value(text)
    assert plain.startswith("v=DKIM1; h=sha256; k=rsa; p=")
    assert " " not in plain.partition("p=")[2]
    key = base64.b64decode(dkim.parse_tags(plain)["p"])
    assert key == der
    assert load_der_public_key(key).key_size == bits


def test_escaped_characters_and_tags_are_normalized():
    text = '( "v=DKIM1;k=rsa;" "\\112=QUJD" )'
    assert dkim.genkey_value(text) == "v=DKIM1; k=rsa; p=QUJD"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no quoted record data"),
        ("mail._domainkey IN TXT ( v=DKIM1 )", "no quoted record data"),
        ('( "v=DKIM1; p=QUJD )', "unterminated"),
        ('( "k=rsa; v=DKIM1; p=QUJD" )', "starts with v=DKIM1"),
        ('( "v=DKIM2; p=QUJD" )', "starts with v=DKIM1"),
        ('( "v=DKIM1; k=rsa" )', "base64 public key"),
        ('( "v=DKIM1; p=" )', "base64 public key"),
        ('( "v=DKIM1; p=QU*D" )', "base64 public key"),
        ('( "v=DKIM1; p=QUJD; p=QUJD" )', "appears twice"),
        ('( "v=DKIM1; novalue; p=QUJD" )', "tag=value"),
        ('( "v=DKIM1; p=QUJD\\"" )', "without quotes"),
        ('( "v=DKIM1; p=QUJD\n" )', "without quotes"),
        ('( "v=DKIM1; p=QUJD\\\\" )', "without quotes"),
        ('( "v=DKIM1; n=\x00; p=QUJD" )', "without quotes"),
    ],
)
def test_refuses_malformed_records(text, message):
    with pytest.raises(InputError, match=message):
        dkim.genkey_value(text)


def test_refuses_non_text():
    with pytest.raises(InputError, match="opendkim-genkey"):
        dkim.genkey_value(None)
    with pytest.raises(InputError, match="printable ASCII"):
        dkim.parse_tags(["v=DKIM1"])


def test_renders_conf_in_order_with_types():
    text = dkim.render_opendkim_conf(
        {
            "Syslog": True,
            "SubDomains": False,
            "UMask": "007",
            "MinimumKeyBits": 1024,
            "OversignHeaders": ["From", "Subject"],
            "Socket": "local:/var/spool/postfix/opendkim/opendkim.sock",
            "Removed": None,
            "On-BadSignature": "accept",
            "Canonicalization": "relaxed/simple",
        }
    )
    assert text == (
        "Syslog yes\n"
        "SubDomains no\n"
        "UMask 007\n"
        "MinimumKeyBits 1024\n"
        "OversignHeaders From, Subject\n"
        "Socket local:/var/spool/postfix/opendkim/opendkim.sock\n"
        "On-BadSignature accept\n"
        "Canonicalization relaxed/simple\n"
    )
    assert dkim.render_opendkim_conf({}) == "\n"


@pytest.mark.parametrize(
    "conf, path, message",
    [
        # Injection through a value: a second parameter on a new line.
        ({"Mode": "v\nSocket inet:8891@0.0.0.0"}, "opendkim_conf.Mode", "control character"),
        ({"Mode": "v\r\nKeyTable file:/tmp/x"}, "opendkim_conf.Mode", "control character"),
        ({"AuthservID": "mx\x00x"}, "opendkim_conf.AuthservID", "control character"),
        ({"Socket": "local:/x\n"}, "opendkim_conf.Socket", "control character"),
        ({"OversignHeaders": ["From", "To\nMode s"]}, "opendkim_conf.OversignHeaders[1]", "control character"),
        # Injection through a key.
        ({"Mode sv\nSocket": "inet:1@0.0.0.0"}, None, "not an OpenDKIM parameter name"),
        ({"Mode\n": "sv"}, None, "not an OpenDKIM parameter name"),
        ({"Key Table": "x"}, None, "not an OpenDKIM parameter name"),
        ({"KeyTable#": "x"}, None, "not an OpenDKIM parameter name"),
        ({"Key-Table": "x"}, None, "not an OpenDKIM parameter name"),
        ({"On-": "x"}, None, "not an OpenDKIM parameter name"),
        ({"": "x"}, None, "not an OpenDKIM parameter name"),
        ({1: "x"}, None, "not an OpenDKIM parameter name"),
        # Wrong shapes.
        ({"Mode": ""}, "opendkim_conf.Mode", "empty"),
        ({"Mode": {"a": 1}}, "opendkim_conf.Mode", "must be a string"),
        ({"Mode": 1.5}, "opendkim_conf.Mode", "must be a string"),
        ({"OversignHeaders": []}, "opendkim_conf.OversignHeaders", "empty list"),
        ({"OversignHeaders": [["From"]]}, "opendkim_conf.OversignHeaders[0]", "list items"),
        ({"OversignHeaders": [None]}, "opendkim_conf.OversignHeaders[0]", "list items"),
        ({"OversignHeaders": ["From, To"]}, "opendkim_conf.OversignHeaders[0]", "','"),
    ],
)
def test_conf_refuses_injection_and_bad_shapes(conf, path, message):
    with pytest.raises(InputError, match=message) as err:
        dkim.render_opendkim_conf(conf)
    if path:
        assert err.value.path == path
    else:
        assert err.value.path.startswith("opendkim_conf.")


def test_conf_must_be_a_mapping():
    with pytest.raises(InputError, match="mapping"):
        dkim.render_opendkim_conf(["Mode sv"])


def test_filters_raise_ansible_errors_naming_the_filter():
    assert set(FilterModule().filters()) == {"dkim_txt_value", "opendkim_conf"}
    assert dkim_txt_value(GENKEY_TXT) == dkim.genkey_value(GENKEY_TXT)
    assert dkim_txt_value(GENKEY_TXT).startswith("v=DKIM1; h=sha256; k=rsa; p=MIIB")
    assert opendkim_conf({"Mode": "sv"}) == "Mode sv\n"
    with pytest.raises(AnsibleFilterError, match="zerotrust.mailstack.dkim_txt_value: value: no quoted"):
        dkim_txt_value("nothing")
    with pytest.raises(AnsibleFilterError, match=r"zerotrust.mailstack.opendkim_conf: opendkim_conf.Mode: "):
        opendkim_conf({"Mode": "s\nv"})


def test_role_base_config_renders_signing_for_submission_only():
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        role_vars = yaml.safe_load(handle)
    conf = {
        key: value.replace("{{ __opendkim_socket }}", "/var/spool/postfix/opendkim/opendkim.sock")
        if isinstance(value, str)
        else value
        for key, value in role_vars["__opendkim_conf"].items()
    }
    lines = dkim.render_opendkim_conf(conf).splitlines()
    for line in (
        "Mode sv",
        "MTA ORIGINATING",
        "UMask 007",
        "Socket local:/var/spool/postfix/opendkim/opendkim.sock",
        "SubDomains no",
        "OversignHeaders From",
        "SignatureAlgorithm rsa-sha256",
        "RequireSafeKeys yes",
        "Canonicalization relaxed/simple",
    ):
        assert line in lines, line


# OpenDKIM ends a line at '#' (a comment): "Domain corp.example # x" would silently cut the value.
@pytest.mark.parametrize(
    "conf", [{"Domain": "corp.example#evil.example"}, {"Domain": ["corp.example", "a#b"]}, {"Selector": "#"}]
)
def test_comment_sign_in_an_opendkim_value_is_refused(conf):
    with pytest.raises(InputError, match="'#'"):
        dkim.render_opendkim_conf(conf)
