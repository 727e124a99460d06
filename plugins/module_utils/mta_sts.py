# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MTA-STS (RFC 8461) policy file and DNS records, with the TLS-RPT (RFC 8460) record.

`policy_text` renders the policy served at
https://mta-sts.<domain>/.well-known/mta-sts.txt, `policy_id` derives the id
announced in the `_mta-sts` TXT record from that text (so the id changes exactly
when the policy does, and senders refetch it), and `records` returns the DNS
records for the dns role's zone module: `_mta-sts` TXT, `mta-sts` CNAME to the
host serving the policy, and `_smtp._tls` TXT when report addresses are given.
"""

import hashlib
import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_domain,
    check_email,
    check_text,
)

MODES = ("enforce", "testing", "none")
# RFC 8461 3.2: max_age is at most 31557600 seconds (about one year).
MAX_AGE_LIMIT = 31557600
# RFC 8461 3.1: the id is 1 to 32 alphanumerics; 20 hex characters of SHA-256 are plenty.
ID_LENGTH = 20
VERSION_LINE = "version: STSv1"

# Patterns are used with fullmatch: '$' would let a trailing newline through.

# A TLS-RPT rua URI (RFC 8460 3): a mailto: address or an https: URL. Commas and
# '!' must be percent-encoded there and ';' ends the field, so none of them (nor
# spaces, quotes or backslashes) is accepted; the address and host are checked again below.
_RUA_MAILTO = re.compile(r"mailto:([A-Za-z0-9._+=-]+@[A-Za-z0-9.-]+)")
_RUA_HTTPS = re.compile(r"https://([A-Za-z0-9.-]+)((?:/(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})*)*)")


def _mx_pattern(value, path):
    """One `mx:` pattern: a host name or `*.<domain>`, lower-cased."""
    check_text(value, path)
    if value.endswith("."):
        raise InputError(path, "%r: an mx pattern is written without a trailing dot" % value)
    name = value.lower()
    rest = name[2:] if name.startswith("*.") else name
    if "*" in rest:
        raise InputError(path, "%r: a wildcard may only be the whole leftmost label, as in *.example.com" % value)
    check_domain(rest, path)
    return name


def _unique(values, check, path):
    """Each value checked (and normalised) by `check`; a repeated one is an error."""
    result = []
    for index, value in enumerate(values):
        where = "%s[%d]" % (path, index)
        item = check(value, where)
        if item in result:
            raise InputError(where, "%r is listed twice" % value)
        result.append(item)
    return result


def policy_text(mode, mx, max_age, path="mta_sts"):
    """The policy file body (RFC 8461 3.2): CRLF-terminated lines, in the RFC's order.

    `mode` is enforce, testing or none; `mx` lists host names or `*.<domain>`
    patterns (empty only with mode none); `max_age` is in seconds.
    """
    mode_path, mx_path, max_age_path = path + "_mode", path + "_mx", path + "_max_age"
    check_text(mode, mode_path)
    if mode not in MODES:
        raise InputError(mode_path, "%r is not one of %s" % (mode, ", ".join(MODES)))
    if not isinstance(mx, (list, tuple)):
        raise InputError(mx_path, "must be a list of host names or *.<domain> patterns")
    if not mx and mode != "none":
        raise InputError(mx_path, "must list at least one mx pattern unless the mode is none")
    patterns = _unique(mx, _mx_pattern, mx_path)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 <= max_age <= MAX_AGE_LIMIT:
        raise InputError(max_age_path, "%r is not a whole number of seconds from 0 to %d" % (max_age, MAX_AGE_LIMIT))
    lines = [VERSION_LINE, "mode: %s" % mode]
    lines.extend("mx: %s" % pattern for pattern in patterns)
    lines.append("max_age: %d" % max_age)
    return "".join(line + "\r\n" for line in lines)


def policy_id(text, path="mta_sts_policy"):
    """The policy id: the first 20 hex characters of the SHA-256 of the policy text."""
    if not isinstance(text, str):
        raise InputError(path, "must be the policy text, got %s" % type(text).__name__)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_LENGTH]


def _rua(value, path):
    """One TLS-RPT report URI: mailto:<address> or https://<host>[/path]."""
    check_text(value, path)
    match = _RUA_MAILTO.fullmatch(value)
    if match:
        check_email(match.group(1), path)
        return value
    match = _RUA_HTTPS.fullmatch(value)
    if match:
        check_domain(match.group(1), path)
        return value
    raise InputError(
        path,
        "%r is not mailto:<address> or https://<host>[/path] (no spaces, ',', '!' or ';')" % value,
    )


def records(domain, policy, policy_host, tlsrpt_rua, path="mta_sts"):
    """DNS records for the zone of `domain`, names relative to it.

    `policy` is the text from policy_text, `policy_host` the host serving it over
    HTTPS (mta-sts.<domain> becomes a CNAME to it), `tlsrpt_rua` a list of report
    URIs; without any, no TLS-RPT record is returned.
    """
    check_domain(domain, path + "_domain")
    policy_path = path + "_policy"
    if not isinstance(policy, str) or not policy.startswith(VERSION_LINE + "\r\n"):
        raise InputError(policy_path, "must be the policy text (starting with %r and CRLF)" % VERSION_LINE)
    host_path = path + "_policy_host"
    check_domain(policy_host, host_path)
    result = [
        {"name": "_mta-sts", "type": "TXT", "value": "v=STSv1; id=%s" % policy_id(policy, policy_path)},
        {"name": "mta-sts", "type": "CNAME", "value": "%s." % policy_host.rstrip(".")},
    ]
    rua_path = path + "_tlsrpt_rua"
    if tlsrpt_rua is None:
        tlsrpt_rua = []
    if not isinstance(tlsrpt_rua, (list, tuple)):
        raise InputError(rua_path, "must be a list of mailto: or https: URIs")
    uris = _unique(tlsrpt_rua, _rua, rua_path)
    if uris:
        result.append({"name": "_smtp._tls", "type": "TXT", "value": "v=TLSRPTv1; rua=%s" % ",".join(uris)})
    return result
