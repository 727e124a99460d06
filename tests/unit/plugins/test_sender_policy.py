"""sender_policy: the author addresses of a submission must belong to its login."""

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import sender_policy as sp

TABLE = {
    "alice@corp.example": ["alice"],
    "alice.example@corp.example": ["alice"],
    "bob@corp.example": ["bob"],
    "ceo@corp.example": ["bob"],
    "shared@corp.example": ["bob", "alice"],
}


def owners(address):
    return TABLE.get(address, [])


def check(headers, login="alice", envelope="alice@corp.example"):
    sp.check_message(login, envelope, headers, owners)


@pytest.mark.parametrize(
    "headers",
    [
        [("From", "alice@corp.example")],
        [("From", "Alice Example <alice.example@corp.example>")],
        [("FROM", "ALICE@CORP.EXAMPLE")],
        [("From", '"alice@corp.example" <alice@corp.example>'), ("Sender", "alice.example@corp.example")],
        [("From", "=?utf-8?q?Alice_=C3=89xample?= <alice@corp.example>")],
        [("From", "Alice\r\n Example <alice@corp.example>")],  # folded
        [("From", "shared@corp.example")],  # one of its owners
        [("From", "Dr. Alice Example <alice@corp.example>")],  # obsolete but unambiguous
        [("From", "alice@corp.example"), ("Reply-To", "bob@corp.example")],  # replies may go anywhere
        # Registered charset names Python does not know by that name (RFC 1556), and an
        # RFC 2231 language tag in an encoded word.
        [("From", "=?iso-8859-8-i?B?4eTg?= <alice@corp.example>")],
        [("From", "=?ISO-8859-6-E?Q?x?= <alice@corp.example>")],
        [("From", "=?UTF-8*en?Q?Alice?= <alice@corp.example>")],
    ],
)
def test_own_addresses_pass(headers):
    check(headers)


@pytest.mark.parametrize(
    "headers, reason",
    [
        ([("From", "ceo@corp.example")], "From: ceo@corp.example is not an address of alice"),
        ([("From", "Bob <BOB@Corp.Example>")], "From: bob@corp.example is not an address of alice"),
        ([("From", "stranger@elsewhere.example")], "not an address of alice"),
        ([("From", "alice@corp.example, bob@corp.example")], "exactly one mailbox, not 2"),
        ([("From", "alice@corp.example"), ("from", "bob@corp.example")], "2 From: headers"),
        ([("From", '"ceo@corp.example" <alice@corp.example>')], "ceo@corp.example is not an address"),
        ([("From", "=?utf-8?b?Y2VvQGNvcnAuZXhhbXBsZQ==?= <alice@corp.example>")], "ceo@corp.example is not"),
        ([("From", "=?UTF-8?Q?ceo=40corp=2Eexample?= <alice@corp.example>")], "ceo@corp.example is not"),
        ([("From", "alice@corp.example (ceo@corp.example)")], "ceo@corp.example is not"),
        ([("From", "alice@corp.example (=?utf-8?q?ceo=40corp.example?=)")], "ceo@corp.example is not"),
        ([("From", "ceo\uff20corp.example <alice@corp.example>")], "ceo@corp.example is not"),
        ([("From", "=?utf-8?q?ceo=EF=B9=ABcorp.example?= <alice@corp.example>")], "ceo@corp.example is not"),
        ([("From", '"ceo @ corp.example" <alice@corp.example>')], "in a form that cannot be checked"),
        ([("From", "alice@corp.example"), ("Sender", "bob@corp.example")], "Sender: bob@corp.example is not"),
        ([("From", "alice@corp.example"), ("Sender", "a@corp.example"), ("Sender", "b@corp.example")], "2 Sender:"),
        ([("From", "team: alice@corp.example;")], "a group is not a mailbox"),
        ([("From", "undisclosed:;")], "a group is not a mailbox"),
        ([("From", "=?utf-8?q?ceo=40corp.example?=")], "malformed"),
        ([("From", "alice")], "malformed"),
        ([("From", "Alice <alice@corp.example")], "malformed"),
        ([("From", "alice@corp.example <bob@corp.example>")], "malformed"),
        ([("From", "<>")], "malformed"),
        ([("From", "alice@corp.example\x00")], "control characters"),
        ([("From", "")], "exactly one mailbox, not 0"),
        ([("Subject", "no author")], "no From: header"),
        ([], "no From: header"),
    ],
)
def test_impersonation_and_ambiguity_are_refused(headers, reason):
    with pytest.raises(sp.Refused) as refused:
        check(headers)
    assert reason in str(refused.value)
    assert str(refused.value).startswith("5.7.1 ")
    assert "\n" not in str(refused.value) and "\r" not in str(refused.value)


def test_envelope_sender_is_checked_too():
    with pytest.raises(sp.Refused, match="MAIL FROM bob@corp.example is not an address of alice"):
        check([("From", "alice@corp.example")], envelope="<bob@corp.example>")
    check([("From", "alice@corp.example")], envelope="<alice.example@corp.example>")


@pytest.mark.parametrize("envelope", ["", "<>", " <> "])
def test_null_envelope_sender_is_refused(envelope):
    with pytest.raises(sp.Refused, match="null sender"):
        sp.check_envelope("alice", envelope)
    sp.check_envelope("alice", "<alice@corp.example>")


def test_no_login_is_refused():
    with pytest.raises(sp.Refused, match="authentication required"):
        sp.check_envelope("", "<alice@corp.example>")
    with pytest.raises(sp.Refused, match="authentication required"):
        sp.check_envelope(None, "<alice@corp.example>")


def test_login_comparison_ignores_case_only():
    check([("From", "alice@corp.example")], login="Alice")
    with pytest.raises(sp.Refused):
        check([("From", "alice@corp.example")], login="alic")


def test_table_fault_propagates_as_unavailable():
    def broken(address):
        raise sp.TableUnavailable("directory down")

    with pytest.raises(sp.TableUnavailable):
        sp.check_message("alice", "alice@corp.example", [("From", "alice@corp.example")], broken)


def test_reason_quotes_client_text_safely():
    with pytest.raises(sp.Refused) as refused:
        check([("From", "=?utf-8?q?x=0Ay?= <ceo@corp.example>")])
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "value",
    [
        "=?no-such-charset?q?x?= <alice@corp.example>",
        "=?UTF-8?B?Y2VvQ?= =?UTF-8?B?GNvcnAuZXhhbXBsZQ==?= <alice@corp.example>",  # broken base64
    ],
)
def test_undecodable_encoded_word_is_refused(value):
    with pytest.raises(sp.Refused, match="5.7.1 undecodable"):
        check([("From", value)])


# The charset aliases are decoded, not waved through: what they hide is still checked.
@pytest.mark.parametrize(
    "value",
    [
        "=?iso-8859-8-i?Q?ceo=40corp.example?= <alice@corp.example>",
        "=?UTF-8*en?Q?ceo=40corp.example?= <alice@corp.example>",
    ],
)
def test_charset_aliases_hide_no_address(value):
    with pytest.raises(sp.Refused, match="ceo@corp.example"):
        check([("From", value)])


@pytest.mark.parametrize(
    "value",
    [
        "alice@corp.example (=?UTF-8?B?Y2VvQGNv cnAuZXhhbXBsZQ==?=)",
        "alice@corp.example (=?UTF-8?Q?ceo=40corp.example ?=)",
    ],
)
def test_encoded_word_with_white_space_is_refused(value):
    """Lenient decoders read these as ceo@corp.example; RFC 2047 forbids the space."""
    with pytest.raises(sp.Refused, match="5.7.1 malformed encoded word"):
        check([("From", value)])


def test_percent_in_a_refused_address_is_kept_for_the_reply():
    with pytest.raises(sp.Refused, match="ceo%corp.example@corp.example is not an address"):
        check([("From", "ceo%corp.example@corp.example")])


# --- tables ------------------------------------------------------------------

LDAP_CF = """# Ansible managed
server_host = ldaps://ldap.corp.example
version = 3
tls_ca_cert_file = /etc/ssl/mailstack/ca.pem
tls_require_cert = yes
bind = yes
bind_dn = cn=postfix,ou=services,dc=corp,dc=example
bind_pw = s3cret=with=equals
search_base = ou=people,dc=corp,dc=example
query_filter = (&(objectClass=mailstackUser)(mailstackEnabled=TRUE)(|(mail=%s)(mailstackAlias=%s)))
result_attribute = uid
"""


def test_ldap_table_is_read_as_postfix_reads_it():
    settings = sp.parse_ldap_table(LDAP_CF)
    assert settings["server_host"] == "ldaps://ldap.corp.example"
    assert settings["bind_pw"] == "s3cret=with=equals"
    assert settings["result_attribute"] == "uid"
    assert settings["scope"] == "sub" and settings["start_tls"] == "no"


@pytest.mark.parametrize(
    "extra, message",
    [
        ("domain = corp.example\n", "'domain' is not a setting"),
        ("result_format = %u\n", "result_format"),
        ("query_filter = (uid=%u)\n", "only %s"),
        ("scope = children\n", "scope"),
        ("  continued\n", "continuation"),
        ("garbage\n", "not a setting"),
        ("server_host = ldap.corp.example\n", "URIs"),
        ("server_host = ldaps://a.example ldapi:///\n", "URIs"),
    ],
)
def test_ldap_table_settings_the_guard_would_misread_are_refused(extra, message):
    with pytest.raises(ValueError, match=message):
        sp.parse_ldap_table(LDAP_CF + extra)


def test_ldap_filter_escapes_the_address():
    def escape(value):
        return value.replace("*", "\\2a").replace("(", "\\28").replace(")", "\\29")

    built = sp.ldap_filter("(|(mail=%s)(alias=%s))(x=100%%)", "a*)(uid=*@corp.example", escape)
    assert built == "(|(mail=a\\2a\\29\\28uid=\\2a@corp.example)(alias=a\\2a\\29\\28uid=\\2a@corp.example))(x=100%)"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("proxy:ldap:/etc/postfix/ldap/sender_logins.cf", ("ldap", "/etc/postfix/ldap/sender_logins.cf")),
        ("texthash:/etc/postfix/sender_logins", ("texthash", "/etc/postfix/sender_logins")),
    ],
)
def test_table_spec(spec, expected):
    assert sp.parse_table_spec(spec) == expected


@pytest.mark.parametrize(
    "spec", ["hash:/etc/postfix/x", "ldap:relative.cf", "ldap:/a.cf, ldap:/b.cf", "texthash:/a b", "pcre:/x"]
)
def test_unsupported_table_spec_is_refused(spec):
    with pytest.raises(ValueError, match="unsupported sender-login table"):
        sp.parse_table_spec(spec)


def test_texthash_table():
    table = sp.parse_texthash("# c\nAlice@Corp.Example alice\nshared@corp.example bob, alice\n\n")
    assert table == {"alice@corp.example": ["alice"], "shared@corp.example": ["bob", "alice"]}


def test_lookup_keys_end_with_the_domain_catch_all():
    assert sp.lookup_keys("alice@corp.example") == ["alice@corp.example", "@corp.example"]
    assert sp.lookup_keys("alice") == ["alice"]
