# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input validation shared by the collection's filters, modules and actions.

Every value that ends up in a rendered config file passes through here first,
so that a newline, a NUL or a malformed name is refused with a message naming
the variable instead of becoming an injected config line.
"""

import ipaddress
import re

# Patterns are used with fullmatch: `$` also matches before a trailing newline.
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)
_LOCAL_PART = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOWER_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class InputError(ValueError):
    """A value that must not reach a host; `path` names the variable."""

    def __init__(self, path, message):
        self.path = path
        super().__init__("%s: %s" % (path, message))


def check_text(value, path):
    """A single-line string without control characters."""
    if not isinstance(value, str):
        raise InputError(path, "must be a string, got %s" % type(value).__name__)
    match = _CONTROL.search(value)
    if match:
        raise InputError(path, "contains the control character %r (newline/NUL injection)" % match.group())
    return value


def check_hostname(value, path):
    """A host name: one or more DNS labels (letters, digits, hyphens)."""
    check_text(value, path)
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        raise InputError(path, "%r is not a valid host name (length)" % value)
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            raise InputError(path, "%r is not a valid host name (label %r)" % (value, label))
    return value


def check_domain(value, path):
    """A fully qualified domain: at least two labels, not all-numeric TLD."""
    check_hostname(value, path)
    labels = value.rstrip(".").split(".")
    if len(labels) < 2:
        raise InputError(path, "%r is not a fully qualified domain" % value)
    if labels[-1].isdigit():
        raise InputError(path, "%r has a numeric top-level label" % value)
    return value


def check_ip(value, path):
    check_text(value, path)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise InputError(path, "%r is not an IP address" % value) from None
    return value


def check_cidr(value, path):
    """A network in CIDR notation with no host bits set (10.0.0.0/8, not 10.0.0.1/8).

    IPv6 may be bracketed as Postfix writes it: [2001:db8::]/32.
    """
    check_text(value, path)
    if "/" not in value:
        raise InputError(path, "%r is not in CIDR notation (missing /prefix)" % value)
    network = re.sub(r"^\[([0-9a-fA-F:.]+)\]/", r"\1/", value)
    try:
        ipaddress.ip_network(network, strict=True)
    except ValueError as exc:
        raise InputError(path, "%r is not a valid CIDR network (%s)" % (value, exc)) from None
    return value


def check_address_or_network(value, path):
    """An IP address (192.0.2.1) or a network in CIDR notation (192.0.2.0/24)."""
    if isinstance(value, str) and "/" in value:
        return check_cidr(value, path)
    try:
        return check_ip(value, path)
    except InputError:
        raise InputError(path, "%r is neither an IP address nor a CIDR network" % (value,)) from None


def check_email(value, path):
    check_text(value, path)
    local, sep, domain = value.rpartition("@")
    if not sep or not _LOCAL_PART.fullmatch(local) or local.startswith(".") or ".." in local:
        raise InputError(path, "%r is not a valid mail address" % value)
    check_domain(domain, path)
    return value


def check_port(value, path):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise InputError(path, "%r is not a TCP/UDP port number" % (value,))
    return value


_LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_login(value, path):
    """A mail login name: lower-case letters, digits, dot, underscore, hyphen."""
    if not isinstance(value, str) or not _LOGIN.fullmatch(value):
        raise InputError(path, "%r is not a login name (a-z, 0-9, . _ -, at most 64)" % (value,))
    return value


def check_positive(value, path):
    """A whole number of at least 1 (a limit of 0 or less is a typo, not a policy)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(path, "%r is not a whole number of at least 1" % (value,))
    return value


def check_label(value, path):
    """One DNS label in lower case (a DKIM selector): letters, digits, inner hyphens, 1-63; no dot."""
    check_text(value, path)
    if not _LOWER_LABEL.fullmatch(value):
        raise InputError(
            path, "%r is not one DNS label (1-63 lower-case letters, digits and inner hyphens, no dot)" % (value,)
        )
    return value


def check_seconds(value, path):
    """A duration in whole seconds, 0 or more; a string of digits (as -e passes it) counts."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(path, "%r is not a whole number of seconds (0 or more)" % (value,))
    return value


_SOCKET = re.compile(r"unix:[A-Za-z0-9_./-]+|inet:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")


def check_socket(value, path):
    """A Postfix-style service address: unix:<path> or inet:<host>:<port>, nothing more."""
    if not isinstance(value, str) or not _SOCKET.fullmatch(value):
        raise InputError(path, "%r is not unix:<path> or inet:<host>:<port>" % (value,))
    return value


_TABLE = re.compile(r"[a-z0-9_]+:[A-Za-z0-9_./:\[\]-]+")


def check_table(value, path):
    """A Postfix lookup table, type:name, with nothing that could start another list item."""
    if not isinstance(value, str) or not _TABLE.fullmatch(value):
        raise InputError(path, "%r is not a Postfix table (type:name, no spaces or commas)" % (value,))
    return value


# One URI, no user info, path or query: OpenLDAP takes a space- or comma-separated
# list, so anything after the host could add a second server.
_LDAP_URI = re.compile(r"(?P<scheme>[a-z]+)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?/?")


# A DNS list as postscreen asks it: domain[=reply filter][*weight]. A filter octet is a
# number, a range [2..11] or a set [2;4]; the weight a whole number, negative to allow-list.
_OCTET_FILTER = r"(\d{1,3}|\[\d{1,3}(\.\.\d{1,3}|(;\d{1,3})*)\])"
_DNSBL_SITE = re.compile(r"(?P<domain>[^=*]+)(=%s(\.%s){3})?(\*-?\d{1,3})?" % (_OCTET_FILTER, _OCTET_FILTER))


def check_dnsbl_site(value, path):
    """A postscreen DNS list: zen.example=127.0.0.[2..11]*3 (filter and weight optional)."""
    check_text(value, path)
    match = _DNSBL_SITE.fullmatch(value)
    if not match:
        raise InputError(path, "%r is not a DNS list as domain[=a.b.c.d][*weight]" % value)
    check_domain(match.group("domain"), path)
    return value


_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,75}")


def check_header_name(value, path):
    """A message header's field name: letters, digits and hyphens (X-Example-Verdict)."""
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise InputError(path, "%r is not a header name (letters, digits, hyphens)" % (value,))
    return value


def check_ldap_uri(value, path, schemes=("ldaps", "ldap")):
    """A single directory URI, scheme://host[:port].

    Plain ldap:// is for consumers that force StartTLS on it (mailstack-authd);
    check_ldaps_uri is for those that would send the bind password in clear.
    """
    if not isinstance(value, str):
        raise InputError(path, "must be a string")
    check_text(value, path)
    wanted = " or ".join("%s://" % scheme for scheme in schemes)
    match = _LDAP_URI.fullmatch(value)
    if not match:
        raise InputError(path, "%r is not one %shost[:port] URI" % (value, wanted))
    if match.group("scheme") not in schemes:
        raise InputError(path, "%r must start with %s" % (value, wanted))
    if match.group("port") is not None:
        check_port(int(match.group("port")), path)
    if not match.group("host").startswith("["):
        check_hostname(match.group("host"), path)
    return value


def check_ldaps_uri(value, path):
    """A single ldaps://host[:port]: the bind password never crosses the network in clear."""
    return check_ldap_uri(value, path, schemes=("ldaps",))


_UNSAFE_PATH = re.compile(r"[\s\"'\\%{}$#;,]")


def check_abspath(value, path):
    """An absolute, normalised path with nothing a config list or a shell would split or expand."""
    check_text(value, path)
    if not value.startswith("/") or _UNSAFE_PATH.search(value):
        raise InputError(path, "%r is not an absolute path without spaces, quotes or %%{}$#;," % value)
    if any(part in (".", "..") for part in value.split("/")):
        raise InputError(path, "%r must not contain . or .. components" % value)
    return value


def records(value, allowed_keys, path):
    """Yield (path, dict) for each item of a list of dicts with no key outside `allowed_keys`."""
    if not isinstance(value, list):
        raise InputError(path, "must be a list")
    for index, item in enumerate(value):
        where = "%s[%d]" % (path, index)
        if not isinstance(item, dict):
            raise InputError(where, "must be a dict")
        unknown = set(item) - set(allowed_keys)
        if unknown:
            raise InputError(where, "unknown keys %s" % ", ".join(sorted(unknown)))
        yield where, item


CHECKS = {
    "text": check_text,
    "login": check_login,
    "hostname": check_hostname,
    "domain": check_domain,
    "ip": check_ip,
    "cidr": check_cidr,
    "address_or_network": check_address_or_network,
    "email": check_email,
    "port": check_port,
    "positive": check_positive,
    "label": check_label,
    "seconds": check_seconds,
    "socket": check_socket,
    "table": check_table,
    "dnsbl_site": check_dnsbl_site,
    "header_name": check_header_name,
    "ldap_uri": check_ldap_uri,
    "ldaps_uri": check_ldaps_uri,
    "abspath": check_abspath,
}


def check_no_control_chars(value, path):
    """Walk a nested value and refuse control characters in any key or string."""
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                check_text(key, "%s (key)" % path)
            check_no_control_chars(item, "%s.%s" % (path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_no_control_chars(item, "%s[%d]" % (path, index))


def _select(value, steps, path):
    """Yield (path, value) for every element a format path addresses."""
    if not steps:
        yield path, value
        return
    step, rest = steps[0], steps[1:]
    if step == "[]":
        if not isinstance(value, (list, tuple)):
            raise InputError(path, "must be a list, got %s" % type(value).__name__)
        for index, item in enumerate(value):
            yield from _select(item, rest, "%s[%d]" % (path, index))
    elif step == "{key}":
        if not isinstance(value, dict):
            raise InputError(path, "must be a mapping, got %s" % type(value).__name__)
        for key in value:
            yield from _select(key, rest, "%s (key %r)" % (path, key))
    elif step == "{}":
        if not isinstance(value, dict):
            raise InputError(path, "must be a mapping, got %s" % type(value).__name__)
        for key, item in value.items():
            yield from _select(item, rest, "%s.%s" % (path, key))
    else:
        if not isinstance(value, dict):
            raise InputError(path, "must be a mapping, got %s" % type(value).__name__)
        if step in value and value[step] is not None:
            yield from _select(value[step], rest, "%s.%s" % (path, step))


def parse_format_path(spec):
    """'zones[].records[].name' -> ('zones', ['[]', 'records', '[]', 'name'])."""
    tokens = re.findall(r"\[\]|\{\}|\{key\}|[^.\[\]{}]+", spec)
    if not tokens or tokens[0] in ("[]", "{}"):
        raise ValueError("format path %r must start with a variable name" % spec)
    return tokens[0], tokens[1:]


def validate_formats(values, formats):
    """Check `values` (variable name -> value) against `formats` (path -> kind).

    A path names a variable and optionally descends into it: `[]` is every list
    element, `{}` every mapping value, `{key}` every mapping key, a bare word
    a mapping key. Variables that
    are absent or null are skipped: required-ness is the argument spec's job.
    A kind ending in `?` also accepts an empty string ("not used", e.g. no directory).
    """
    for spec, kind in formats.items():
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        if kind not in CHECKS:
            raise ValueError("unknown format %r for %s" % (kind, spec))
        name, steps = parse_format_path(spec)
        if values.get(name) is None:
            continue
        for path, item in _select(values[name], steps, name):
            if not (optional and item == ""):
                CHECKS[kind](item, path)


def check_declared(formats, declared):
    """Every variable given a format is declared: a misspelt name would skip its check."""
    for spec in formats:
        name = parse_format_path(spec)[0]
        if name not in declared:
            raise InputError(name, "has a format to check but is not declared in the argument spec")


def validate_inputs(values, formats, declared=None):
    """The whole input check of a role: no control characters anywhere, then formats.

    `declared` (the spec's option names) makes a format for an undeclared variable an error."""
    if declared is not None:
        check_declared(formats, declared)
    for name, value in values.items():
        check_no_control_chars(value, name)
    validate_formats(values, formats)
