import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import impersonation as imp

NAMES = ["Alice Example", "Bob Builder", "Cher"]
OURS = ["corp.example", "corp.test"]


def marks(value):
    return imp.marks([value], NAMES, OURS)


@pytest.mark.parametrize(
    "value",
    [
        "Peer Person <peer@outside.example>",
        "peer@outside.example",
        "Alice Wonder <alice@outside.example>",  # a first name alone is no one's name
        "Cher Fan Club <news@outside.example>",  # a one-word name only as the whole name
        "=?utf-8?q?J=C3=BCrgen_Peer?= <j@outside.example>",
        "Example Corp Ltd <sales@example-corp.outside.example>",  # our words, not our name
    ],
)
def test_ordinary_senders_from_outside_carry_no_mark(value):
    assert marks(value) == []


@pytest.mark.parametrize(
    "value, reason",
    [
        ("Alice Example <ceo@outside.example>", "shows the name of Alice Example"),
        ("Example, Alice <a@outside.example>", "shows the name of Alice Example"),
        ("ALICE   EXAMPLE <a@outside.example>", "shows the name of Alice Example"),
        ("alice.example@outside.example", "shows the name of Alice Example"),
        ("Cher <c@outside.example>", "shows the name of Cher"),
        # Cyrillic А, e and х; a zero for the o of Bob; accents
        ("\u0410lic\u0435 E\u0445ample <a@outside.example>", "shows the name of Alice Example"),
        ("B0b Builder <b@outside.example>", "shows the name of Bob Builder"),
        ("Alicé Exämple <a@outside.example>", "shows the name of Alice Example"),
        ("=?utf-8?b?QWxpY2UgRXhhbXBsZQ==?= <a@outside.example>", "shows the name of Alice Example"),
        # full-width letters (NFKC)
        ("\uff21lice \uff25xample <a@outside.example>", "shows the name of Alice Example"),
        ('"alice@corp.example" <x@outside.example>', "shows the address alice@corp.example of ours"),
        ('"alice\uff20corp.example" <x@outside.example>', "shows the address alice@corp.example of ours"),
        ("IT desk of corp.example <it@outside.example>", "shows the name of corp.example"),
        ("Helpdesk <it@corp-example.net>", "uses the domain corp-example.net, which looks like corp.example"),
        ("Helpdesk <it@corp.example.evil.net>", "uses the domain corp.example.evil.net, which looks like corp.example"),
        ("Helpdesk <it@c0rp.example>", "uses the domain c0rp.example, which looks like corp.example"),
        ("Helpdesk <it@corp.exarnple>", "uses the domain corp.exarnple, which looks like corp.example"),
        ("Helpdesk <it@corq.example>", "uses the domain corq.example, which looks like corp.example"),
        ("Helpdesk <it@copr.example>", "uses the domain copr.example, which looks like corp.example"),
        ("Helpdesk <it@xn--orp-3ed.example>", "uses the domain xn--orp-3ed.example, which looks like corp.example"),
    ],
)
def test_posing_as_one_of_ours_is_named(value, reason):
    assert reason in marks(value)


def test_our_own_domains_and_their_subdomains_are_not_look_alikes():
    assert imp.imitated_domain("corp.example", OURS) is None
    assert imp.imitated_domain("lists.corp.example", OURS) is None
    assert imp.imitated_domain("corp.test", OURS) is None


def test_short_names_are_not_matched_by_one_edit():
    assert imp.imitated_domain("ab.io", ["ac.io"]) is None
    assert imp.imitated_domain("corq.example", ["corp.example"]) == "corp.example"


def test_an_unparsable_from_is_still_read():
    assert "shows the name of Alice Example" in marks("Alice Example <a@outside.example> <b@outside.example>")
    assert "shows the name of Alice Example" in marks("=?bogus?x?Alice?= Alice Example <a@outside.example>")


def test_several_from_headers_are_each_read():
    assert imp.marks(["Peer <p@outside.example>", "Alice Example <a@outside.example>"], NAMES, OURS) == [
        "shows the name of Alice Example"
    ]


def test_tags_go_in_front_of_the_subject_once():
    assert imp.tagged_subject("Invoice", ["[Impersonation?]", "[EXTERNAL]"]) == "[Impersonation?] [EXTERNAL] Invoice"
    assert imp.tagged_subject("Re: [EXTERNAL] Invoice", ["[EXTERNAL]"]) == "Re: [EXTERNAL] Invoice"
    assert imp.tagged_subject(None, ["[EXTERNAL]"]) == "[EXTERNAL]"
    assert imp.tagged_subject("Invoice", ["", None]) == "Invoice"
