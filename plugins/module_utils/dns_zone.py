# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a DNS zone from validated records, keeping the SOA serial stable.

The serial changes only when the records change, so a converge that changes
nothing leaves the zone file byte-for-byte identical (idempotence), and a
change always raises the serial (secondaries and the signer see it).
"""

import ipaddress
import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_domain,
    check_email,
    check_hostname,
    check_text,
)

RECORD_TYPES = ("A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SRV", "TLSA", "TXT")
# Validators use fullmatch: `$` also matches before a trailing newline.
_OWNER_LABEL = re.compile(r"\*|_?[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?", re.IGNORECASE)
_SERIAL = re.compile(r"^@\s+IN\s+SOA\s+\S+\s+\S+\s+\(\s*(\d+)\s*;\s*serial", re.MULTILINE)
_HEX = re.compile(r"[0-9a-fA-F]+")
_CAA = re.compile(r'(\d+)\s+(issue|issuewild|iodef)\s+"([^"\\]*)"')
SERIAL_PLACEHOLDER = "@@SERIAL@@"


def _check_owner(name, path):
    check_text(name, path)
    if name == "@":
        return name
    for label in name.rstrip(".").split("."):
        if not _OWNER_LABEL.fullmatch(label):
            raise InputError(path, "%r is not a valid owner name (label %r)" % (name, label))
    return name


def _target(value, path):
    """A host name used as record data; relative names stay relative."""
    check_hostname(value, path)
    return value


def _txt_octet(octet):
    """One octet of TXT data in zone-file syntax: itself, \\" or \\\\, or \\DDD."""
    if octet in (0x22, 0x5C):
        return "\\" + chr(octet)
    if 0x20 <= octet < 0x7F:
        return chr(octet)
    return "\\%03d" % octet


def _quote_txt(value, path):
    check_text(value, path)
    # One TXT string holds at most 255 octets; long values (DKIM keys) are split.
    # Cutting the list of escaped octets (not the escaped text) never splits an
    # escape, and counts octets (UTF-8), not characters.
    octets = [_txt_octet(octet) for octet in value.encode("utf-8")]
    chunks = ["".join(octets[i : i + 255]) for i in range(0, len(octets), 255)] or [""]
    return " ".join('"%s"' % chunk for chunk in chunks)


def _int_field(token, path, low, high):
    if not token.isdigit() or not low <= int(token) <= high:
        raise InputError(path, "%r must be an integer from %d to %d" % (token, low, high))
    return token


def format_rdata(rtype, value, path):
    """Validate the data of one record and return it in zone-file syntax."""
    if rtype == "TXT":
        return _quote_txt(value, path)
    check_text(value, path)
    fields = value.split()
    if rtype in ("A", "AAAA"):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise InputError(path, "%r is not an IP address" % value) from None
        if (rtype == "A") != (address.version == 4):
            raise InputError(path, "%r does not fit a %s record" % (value, rtype))
        return value
    if rtype in ("CNAME", "NS", "PTR"):
        return _target(value, path)
    if rtype == "MX":
        if len(fields) != 2:
            raise InputError(path, "MX data must be 'preference host', got %r" % value)
        return "%s %s" % (_int_field(fields[0], path, 0, 65535), _target(fields[1], path))
    if rtype == "SRV":
        if len(fields) != 4:
            raise InputError(path, "SRV data must be 'priority weight port target'")
        for token in fields[:2]:
            _int_field(token, path, 0, 65535)
        _int_field(fields[2], path, 1, 65535)
        return "%s %s %s %s" % (fields[0], fields[1], fields[2], _target(fields[3], path))
    if rtype == "TLSA":
        if len(fields) != 4 or not _HEX.fullmatch(fields[3]):
            raise InputError(path, "TLSA data must be 'usage selector mtype hexdata'")
        _int_field(fields[0], path, 0, 3)
        _int_field(fields[1], path, 0, 1)
        _int_field(fields[2], path, 0, 2)
        return " ".join(fields[:3] + [fields[3].lower()])
    if rtype == "CAA":
        match = _CAA.fullmatch(value)
        if not match:
            raise InputError(path, "CAA data must be 'flags tag \"value\"'")
        _int_field(match.group(1), path, 0, 255)
        return value
    raise InputError(path, "record type %r is not one of %s" % (rtype, ", ".join(RECORD_TYPES)))


def normalize_records(records, path="records"):
    """Validate records and return (owner, ttl, type, rdata) tuples in a stable order."""
    if not isinstance(records, list):
        raise InputError(path, "must be a list of records")
    lines = set()
    for index, record in enumerate(records):
        where = "%s[%d]" % (path, index)
        if not isinstance(record, dict):
            raise InputError(where, "must be a mapping with name, type and value")
        unknown = set(record) - {"name", "type", "value", "ttl"}
        if unknown:
            raise InputError(where, "unknown keys %s" % ", ".join(sorted(unknown)))
        for key in ("name", "type", "value"):
            if key not in record:
                raise InputError(where, "missing %r" % key)
        rtype = str(record["type"]).upper()
        if rtype not in RECORD_TYPES:
            raise InputError(where + ".type", "%r is not one of %s" % (rtype, ", ".join(RECORD_TYPES)))
        owner = _check_owner(record["name"], where + ".name")
        ttl = record.get("ttl")
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 2147483647:
                raise InputError(where + ".ttl", "must be an integer number of seconds")
            ttl = str(ttl)
        rdata = format_rdata(rtype, record["value"], where + ".value")
        lines.add((owner, ttl or "", rtype, rdata))
    return sorted(lines, key=lambda item: (item[0] != "@", item[0], item[2], item[3]))


def render_zone(zone, records, primary_ns, hostmaster, ttl=3600, serial=SERIAL_PLACEHOLDER):
    """Zone-file text for `zone`; the serial is a placeholder unless given."""
    check_domain(zone, "zone")
    _target(primary_ns, "primary_ns")
    check_email(hostmaster, "hostmaster")
    local, domain = hostmaster.rsplit("@", 1)
    rname = "%s.%s." % (local.replace(".", "\\."), domain.rstrip("."))
    rows = normalize_records(records)
    width = max([len(row[0]) for row in rows] + [1])
    out = [
        "; zone %s, managed by zerotrust.mailstack: changes here are overwritten" % zone,
        "$ORIGIN %s." % zone.rstrip("."),
        "$TTL %d" % ttl,
        "@ IN SOA %s %s ( %s ; serial" % (primary_ns, rname, serial),
        "    3600 900 1209600 300 ) ; refresh retry expire negative-ttl",
    ]
    for owner, rttl, rtype, rdata in rows:
        fields = [owner.ljust(width)] + ([rttl] if rttl else []) + ["IN", rtype, rdata]
        out.append(" ".join(fields))
    return "\n".join(out) + "\n"


def parse_serial(text):
    match = _SERIAL.search(text or "")
    return int(match.group(1)) if match else None


def next_serial(current, today):
    """Date-based serial (YYYYMMDDnn), always greater than `current`."""
    base = int(today) * 100
    if current is None or current < base:
        return base
    return current + 1


def plan_zone(existing_text, template_text, today):
    """Return (new_text, changed). `template_text` carries the serial placeholder."""
    current = parse_serial(existing_text)
    if current is not None:
        unchanged = template_text.replace(SERIAL_PLACEHOLDER, str(current))
        if unchanged == existing_text:
            return existing_text, False
    return template_text.replace(SERIAL_PLACEHOLDER, str(next_serial(current, today))), True
