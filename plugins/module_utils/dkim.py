# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenDKIM helpers: the public key record of a signing key, and opendkim.conf as data.

`public_key_record` turns the signing key's public half (PEM, as `openssl pkey
-pubout` prints it) into the record's value as one plain, unquoted string. Quoting
it and splitting it into 255-octet strings is left to the zone module
(dns_zone.format_rdata). The record is derived from the key itself, never read
from a file in opendkim's own directory.

`render_opendkim_conf` turns a mapping of OpenDKIM parameters into opendkim.conf
text, refusing anything that could inject a second line. OpenDMARC, of the same
project, reads the same syntax: opendmarc.conf is rendered by it too.
"""

import base64
import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError, check_text

# Patterns are used with fullmatch: '$' would let a trailing newline through.

# A DKIM key record (RFC 6376 3.6.1): tag=value pairs separated by ';'. The value
# is printable ASCII; quotes and backslashes never occur in one and are refused,
# so quoting it for a zone file needs no escaping.
_RECORD_CHARS = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]+")
_TAG = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_PEM_BEGIN = "-----BEGIN PUBLIC KEY-----"
_PEM_END = "-----END PUBLIC KEY-----"
# The rsaEncryption algorithm identifier (1.2.840.113549.1.1.1) near the start of the DER.
_RSA_OID = bytes.fromhex("06092a864886f70d010101")

# Parameter names are letters; the On-<condition> family (On-BadSignature) has one hyphen.
_CONF_KEY = re.compile(r"(On-)?[A-Za-z]+")


def parse_tags(value, path="value"):
    """Check a DKIM key record and return its tags as an ordered dict."""
    if not isinstance(value, str) or not _RECORD_CHARS.fullmatch(value):
        raise InputError(path, "a DKIM key record is printable ASCII without quotes or backslashes")
    tags = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, tag_value = part.partition("=")
        name = name.strip()
        if not sep or not _TAG.fullmatch(name):
            raise InputError(path, "%r is not a tag=value pair" % part)
        if name in tags:
            raise InputError(path, "tag %r appears twice" % name)
        tags[name] = tag_value.strip()
    if next(iter(tags), None) != "v" or tags["v"] != "DKIM1":
        raise InputError(path, "a DKIM key record starts with v=DKIM1")
    key = re.sub(r"\s+", "", tags.get("p", ""))
    if not key or not _BASE64.fullmatch(key):
        raise InputError(path, "a DKIM key record needs a base64 public key in p=")
    tags["p"] = key
    return tags


def public_key_record(pem, path="value"):
    """The DKIM key record (v=DKIM1; h=sha256; k=rsa; p=<key>) of an RSA public key in PEM.

    The PEM is what `openssl pkey -pubout` prints for the signing key: its base64 body is
    the DER SubjectPublicKeyInfo that p= carries (RFC 6376 3.6.1).
    """
    if not isinstance(pem, str):
        raise InputError(path, "must be an RSA public key in PEM (openssl pkey -pubout)")
    lines = [line.strip() for line in pem.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _PEM_BEGIN or lines[-1] != _PEM_END:
        raise InputError(path, "must be one public key between %s and %s" % (_PEM_BEGIN, _PEM_END))
    key = "".join(lines[1:-1])
    if not _BASE64.fullmatch(key):
        raise InputError(path, "the public key is not base64")
    if _RSA_OID not in base64.b64decode(key)[:32]:
        raise InputError(path, "only RSA keys are published (k=rsa)")
    tags = parse_tags("v=DKIM1; h=sha256; k=rsa; p=" + key, path)
    return "; ".join("%s=%s" % item for item in tags.items())


def _conf_value(value, path):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        check_text(value, path)
        if not value.strip():
            raise InputError(path, "must not be empty")
        # OpenDKIM and OpenDMARC cut a line at '#' (no escape works reliably): the rest would be silently lost.
        if "#" in value:
            raise InputError(path, "must not contain '#' (the rest of the line would be read as a comment)")
        return value.strip()
    raise InputError(path, "must be a string, number, boolean or list, got %s" % type(value).__name__)


def render_opendkim_conf(conf, path="opendkim_conf"):
    """Return opendkim.conf text (ending with a newline), one `Key value` line per parameter.

    Keys are OpenDKIM parameter names: letters only, or `On-` and letters
    (`On-BadSignature`). Booleans are yes/no, lists are joined with ", ", null values are left out so
    an override can remove a setting.
    """
    if not isinstance(conf, dict):
        raise InputError(path, "must be a mapping of parameters")
    lines = []
    for key, value in conf.items():
        where = "%s.%s" % (path, key)
        if not isinstance(key, str) or not _CONF_KEY.fullmatch(key):
            raise InputError(where, "%r is not a parameter name (letters, or On- and letters)" % (key,))
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            items = []
            for index, item in enumerate(value):
                item_where = "%s[%d]" % (where, index)
                if item is None or isinstance(item, (list, tuple, dict)):
                    raise InputError(item_where, "list items must be strings, numbers or booleans")
                text = _conf_value(item, item_where)
                if "," in text:
                    raise InputError(item_where, "a list item must not contain ','")
                items.append(text)
            if not items:
                raise InputError(where, "must not be an empty list")
            text = ", ".join(items)
        else:
            text = _conf_value(value, where)
        lines.append("%s %s" % (key, text))
    return "\n".join(lines) + "\n"
