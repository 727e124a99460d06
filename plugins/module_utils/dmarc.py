# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SPF and DMARC records a domain of the stack publishes.

`sender_policy_records` returns them as the dns role takes records: a list of
{name, type, value} relative to the domain's zone. The SPF record names the
sending hosts by address (no lookups, no include) and disowns the rest with
`-all`; the DMARC record asks for strict alignment of SPF and DKIM, applies the
policy to subdomains too, and names where aggregate reports go.
"""

import ipaddress

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError, check_email

POLICIES = ("reject", "quarantine", "none")
# RFC 7489 6.4: a URI in rua is separated by ',' and may carry a size after '!';
# an address holding either would be read as two, so it is refused.
_URI_SEPARATORS = ",!;"


def spf_record(addresses, path="addresses"):
    if not isinstance(addresses, (list, tuple)) or not addresses:
        raise InputError(path, "must be a non-empty list of the sending hosts' IP addresses")
    mechanisms = []
    for index, address in enumerate(addresses):
        where = "%s[%d]" % (path, index)
        try:
            parsed = ipaddress.ip_address(address if isinstance(address, str) else "")
        except ValueError:
            raise InputError(where, "%r is not an IP address" % (address,)) from None
        mechanism = "ip%d:%s" % (parsed.version, parsed.compressed)
        if mechanism not in mechanisms:
            mechanisms.append(mechanism)
    return "v=spf1 %s -all" % " ".join(mechanisms)


def dmarc_record(policy, report_addresses, path="dmarc"):
    if policy not in POLICIES:
        raise InputError(path + ".policy", "must be one of %s, got %r" % (", ".join(POLICIES), policy))
    if not isinstance(report_addresses, (list, tuple)):
        raise InputError(path + ".report_addresses", "must be a list of mail addresses")
    tags = ["v=DMARC1", "p=" + policy, "sp=" + policy, "adkim=s", "aspf=s"]
    uris = []
    for index, address in enumerate(report_addresses):
        where = "%s.report_addresses[%d]" % (path, index)
        check_email(address, where)
        if any(char in address for char in _URI_SEPARATORS):
            raise InputError(
                where, "%r holds one of %r, which split a DMARC report address" % (address, _URI_SEPARATORS)
            )
        uris.append("mailto:" + address)
    if uris:
        tags.append("rua=" + ",".join(uris))
    return "; ".join(tags)


def sender_policy_records(addresses, policy, report_addresses):
    """The zone records of one domain: SPF at its apex, DMARC at _dmarc."""
    return [
        {"name": "@", "type": "TXT", "value": spf_record(addresses)},
        {"name": "_dmarc", "type": "TXT", "value": dmarc_record(policy, report_addresses)},
    ]
