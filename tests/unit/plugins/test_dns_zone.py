import re

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils import dns_zone as z
from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

RECORDS = [
    {"name": "mx", "type": "A", "value": "192.0.2.25"},
    {"name": "@", "type": "MX", "value": "10 mx.corp.example."},
    {"name": "_dmarc", "type": "TXT", "value": 'v=DMARC1; p=reject; rua="x"'},
    {"name": "_25._tcp.mx", "type": "TLSA", "value": "3 1 1 ABCDEF"},
]


def render(records=RECORDS, serial=z.SERIAL_PLACEHOLDER):
    return z.render_zone("corp.example", records, "dns.corp.example.", "hostmaster@corp.example", serial=serial)


def test_render_is_stable_and_sorted():
    text = render()
    assert text == render(list(reversed(RECORDS)))
    lines = text.splitlines()
    assert lines[1] == "$ORIGIN corp.example."
    assert "hostmaster.corp.example." in lines[3]
    assert lines[5].startswith("@") and lines[5].endswith("IN MX 10 mx.corp.example.")
    assert '_dmarc IN TXT "v=DMARC1; p=reject; rua=\\"x\\""' in re.sub(" +", " ", text)
    assert "3 1 1 abcdef" in text


def test_long_txt_is_split_into_255_octet_strings():
    text = render([{"name": "k._domainkey", "type": "TXT", "value": "p=" + "A" * 600}])
    line = [row for row in text.splitlines() if "k._domainkey" in row][0]
    strings = line.split("IN TXT ")[1].split(" ")
    assert [len(s) - 2 for s in strings] == [255, 255, 92]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"name": "mx", "type": "A", "value": "192.0.2.25\n@ IN NS evil."}, "control character"),
        ({"name": "mx\nevil", "type": "A", "value": "192.0.2.25"}, "control character"),
        ({"name": "m x", "type": "A", "value": "192.0.2.25"}, "owner name"),
        ({"name": "mx", "type": "A", "value": "2001:db8::1"}, "does not fit"),
        ({"name": "mx", "type": "AAAA", "value": "192.0.2.1"}, "does not fit"),
        ({"name": "mx", "type": "SOA", "value": "x"}, "not one of"),
        ({"name": "@", "type": "MX", "value": "mx.corp.example."}, "preference host"),
        ({"name": "@", "type": "MX", "value": "99999 mx."}, "integer"),
        ({"name": "t", "type": "TLSA", "value": "3 1 1 xyz"}, "TLSA"),
        ({"name": "t", "type": "TLSA", "value": "4 1 1 ab"}, "integer"),
        ({"name": "t", "type": "TXT", "value": "a\x00b"}, "control character"),
        ({"name": "t", "type": "A"}, "missing"),
        ({"name": "t", "type": "A", "value": "192.0.2.1", "class": "CH"}, "unknown keys"),
        ({"name": "t", "type": "A", "value": "192.0.2.1", "ttl": "1h"}, "seconds"),
        ({"name": "@", "type": "CAA", "value": "0 issue ca.example"}, "CAA"),
    ],
)
def test_bad_records_are_refused_with_their_path(record, message):
    with pytest.raises(InputError, match=message) as err:
        render([{"name": "ok", "type": "A", "value": "192.0.2.1"}, record])
    assert err.value.path.startswith("records[1]")


def test_bad_zone_name_refused():
    with pytest.raises(InputError, match="zone"):
        z.render_zone("corp\nexample", [], "ns.", "h@corp.example")


def test_serial_only_moves_when_records_change():
    first, changed = z.plan_zone(None, render(), "20261125")
    assert changed and z.parse_serial(first) == 2026112500
    again, changed = z.plan_zone(first, render(), "20261126")
    assert not changed and again == first
    more = RECORDS + [{"name": "ldap", "type": "A", "value": "192.0.2.30"}]
    second, changed = z.plan_zone(first, render(more), "20261125")
    assert changed and z.parse_serial(second) == 2026112501
    third, changed = z.plan_zone(second, render(RECORDS), "20261127")
    assert changed and z.parse_serial(third) == 2026112700


def test_hand_edited_file_is_replaced():
    first, _ = z.plan_zone(None, render(), "20261125")
    tampered = first + "evil IN A 192.0.2.66\n"
    fixed, changed = z.plan_zone(tampered, render(), "20261125")
    assert changed and "evil" not in fixed and z.parse_serial(fixed) == 2026112501


def test_next_serial():
    assert z.next_serial(None, "20261125") == 2026112500
    assert z.next_serial(2026112599, "20261125") == 2026112600
    assert z.next_serial(2030010100, "20261125") == 2030010101


def _txt_octets(rdata):
    """The character-strings of zone-file TXT data as octets: \\X is X, \\DDD one octet."""
    strings = []
    for quoted in re.findall(r'"((?:[^"\\]|\\.)*)"', rdata):
        octets, index = bytearray(), 0
        while index < len(quoted):
            if quoted[index] == "\\" and quoted[index + 1 : index + 4].isdigit():
                octets.append(int(quoted[index + 1 : index + 4]))
                index += 4
            elif quoted[index] == "\\":
                octets += quoted[index + 1].encode()
                index += 2
            else:
                octets += quoted[index].encode()
                index += 1
        strings.append(bytes(octets))
    assert rdata == " ".join('"%s"' % q for q in re.findall(r'"((?:[^"\\]|\\.)*)"', rdata))
    return strings


@pytest.mark.parametrize("offset", [253, 254, 255])
@pytest.mark.parametrize("special", ['"', "\\", "é", "\u20ac"])
def test_txt_escapes_are_never_split_across_strings(offset, special):
    # A DKIM-like record with an escaped character right at a 255-octet boundary.
    value = "v=DKIM1; k=rsa; n=" + "a" * (offset - 18) + special + "; p=" + "B" * 400
    strings = _txt_octets(z.format_rdata("TXT", value, "records[0].value"))
    assert all(0 < len(string) <= 255 for string in strings), [len(s) for s in strings]
    assert b"".join(strings) == value.encode()
