import base64
import os
import re

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.filter.dkim import (
    FilterModule,
    dkim_key_record,
    opendkim_conf,
    opendmarc_conf,
)
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dkim, dns_zone
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key

ROLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "opendkim")


def public_pem(bits=2048):
    """The PEM `openssl pkey -pubout` prints for a fresh RSA key, and the key's DER."""
    public = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode(), public.public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


PEM, DER = public_pem()
CHUNK = re.compile(r'"([^"]*)"')


def unquote(value):
    chunks = CHUNK.findall(value)
    # Nothing but quoted strings separated by single spaces.
    assert value == " ".join('"%s"' % chunk for chunk in chunks)
    return chunks


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_the_record_carries_the_public_key(bits):
    pem, der = public_pem(bits)
    value = dkim.public_key_record(pem)
    assert value.startswith("v=DKIM1; h=sha256; k=rsa; p=")
    key = base64.b64decode(dkim.parse_tags(value)["p"])
    assert key == der
    assert load_der_public_key(key).key_size == bits


def test_the_value_fits_the_zone_modules_txt_strings():
    # The dns role's zone module quotes the plain value and cuts it into
    # 255-octet strings; joined again they must give back the value.
    for pem in (PEM, public_pem(4096)[0]):
        value = dkim.public_key_record(pem)
        assert '"' not in value and "\\" not in value
        strings = unquote(dns_zone.format_rdata("TXT", value, "records[0].value"))
        assert len(strings) >= 2
        assert all(0 < len(string.encode()) <= 255 for string in strings)
        assert "".join(strings) == value


def test_surrounding_whitespace_and_crlf_are_accepted():
    assert dkim.public_key_record("\n" + PEM.replace("\n", "\r\n") + "\n") == dkim.public_key_record(PEM)


@pytest.mark.parametrize(
    "pem, message",
    [
        (None, "RSA public key in PEM"),
        ("", "one public key between"),
        ("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", "one public key between"),
        (PEM.replace("PUBLIC KEY", "PRIVATE KEY"), "one public key between"),
        (PEM + PEM, "not base64"),
        (PEM.replace("\n", "\n*", 1), "not base64"),
        (PEM.replace("\n", "\nv=DKIM1; p=", 1), "not base64"),
        (
            # An Ed25519 key (RFC 8410's example).
            "-----BEGIN PUBLIC KEY-----\n"
            "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
            "-----END PUBLIC KEY-----\n",
            "only RSA keys",
        ),
    ],
)
def test_anything_but_one_rsa_public_key_is_refused(pem, message):
    with pytest.raises(InputError, match=message):
        dkim.public_key_record(pem)


def test_refuses_malformed_tags():
    with pytest.raises(InputError, match="printable ASCII"):
        dkim.parse_tags(["v=DKIM1"])
    with pytest.raises(InputError, match="starts with v=DKIM1"):
        dkim.parse_tags("k=rsa; v=DKIM1; p=QUJD")
    with pytest.raises(InputError, match="appears twice"):
        dkim.parse_tags("v=DKIM1; p=QUJD; p=QUJD")
    assert dkim.parse_tags("v=DKIM1;k=rsa; p=QU JD") == {"v": "DKIM1", "k": "rsa", "p": "QUJD"}


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
        ({"Mode sv\nSocket": "inet:1@0.0.0.0"}, None, "not a parameter name"),
        ({"Mode\n": "sv"}, None, "not a parameter name"),
        ({"Key Table": "x"}, None, "not a parameter name"),
        ({"KeyTable#": "x"}, None, "not a parameter name"),
        ({"Key-Table": "x"}, None, "not a parameter name"),
        ({"On-": "x"}, None, "not a parameter name"),
        ({"": "x"}, None, "not a parameter name"),
        ({1: "x"}, None, "not a parameter name"),
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
    assert set(FilterModule().filters()) == {"dkim_key_record", "opendkim_conf", "opendmarc_conf"}
    assert dkim_key_record(PEM) == dkim.public_key_record(PEM)
    assert dkim_key_record(PEM).startswith("v=DKIM1; h=sha256; k=rsa; p=MIIB")
    assert opendkim_conf({"Mode": "sv"}) == "Mode sv\n"
    with pytest.raises(AnsibleFilterError, match="zerotrust.mailstack.dkim_key_record: value: must be one public key"):
        dkim_key_record("nothing")
    with pytest.raises(AnsibleFilterError, match=r"zerotrust.mailstack.opendkim_conf: opendkim_conf.Mode: "):
        opendkim_conf({"Mode": "s\nv"})
    assert opendmarc_conf({"RejectFailures": True}) == "RejectFailures yes\n"
    with pytest.raises(AnsibleFilterError, match=r"zerotrust.mailstack.opendmarc_conf: opendmarc_conf.AuthservID: "):
        opendmarc_conf({"AuthservID": "mx # x"})


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
