# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which From:/Sender: a submission login may put on a message, and the table that says so.

The sender guard milter (roles/sender_guard) asks this module at each stage of an
authenticated submission. The rule: every address a reader could take for the
author -- the From: and Sender: mailboxes, and anything address-shaped in their
display names or comments, encoded words decoded -- must be one the login owns
in the same table Postfix uses for `smtpd_sender_login_maps`. Anything that
cannot be parsed unambiguously is refused rather than guessed at.

Standard library only: the daemon imports this file as it is on the mail host.
"""

import email.errors
import email.header
import email.headerregistry
import re
import unicodedata

# The headers a mail client shows as the author; RFC 5322 allows each at most once.
AUTHOR_HEADERS = ("from", "sender")

# RFC 2047 encoded word, wherever it sits (display name or comment).
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
# What a lenient reader may still decode: white space inside, which RFC 2047 forbids.
_LOOSE_ENCODED_WORD = re.compile(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=")
# Something a reader would take for an address once rendered.
ADDRESS_LIKE = re.compile(r"[^\s<>()\[\]\",;:@]+@[^\s<>()\[\]\",;:@]+")
# A plain ASCII addr-spec: the only form a login's own address takes in the directory.
_ADDR_SPEC = re.compile(r"\A[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# The charset of an encoded word, with an optional RFC 2231 language tag ("UTF-8*en").
_ENCODED_WORD_CHARSET = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?(?=[bBqQ]\?)")
# RFC 1556's visual/implicit Hebrew and Arabic names: the same octets as ISO-8859-8 and -6.
_CHARSET_DIRECTION = re.compile(r"\A(iso-8859-[68])-[ie]\Z", re.IGNORECASE)
_REGISTRY = email.headerregistry.HeaderRegistry()


class Refused(Exception):
    """The message may not be sent; str() is the reason given to the client (one line)."""


class TableUnavailable(Exception):
    """The owner table could not be asked: a fault, so the message waits (4xx)."""


def _printable(value, limit=80):
    """A client-supplied value safe to quote back in a one-line SMTP reply."""
    text = "".join(ch if ch.isprintable() and ch not in "\r\n" else "?" for ch in value)
    return text if len(text) <= limit else text[:limit] + "..."


def unfold(value):
    """A header value on one line: folding (CRLF or LF before white space) removed."""
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def _registered_charsets(value):
    """Encoded words with charset names Python knows: no language tag, no -i/-e suffix."""

    def rename(match):
        return "=?%s?" % _CHARSET_DIRECTION.sub(r"\1", match.group(1))

    return _ENCODED_WORD_CHARSET.sub(rename, value)


def _decode_encoded_words(text):
    def decode(match):
        try:
            return str(email.header.make_header(email.header.decode_header(match.group(0))))
        except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError) as exc:
            raise Refused("5.7.1 undecodable encoded word %s" % _printable(match.group(0))) from exc

    decoded = _ENCODED_WORD.sub(decode, text)
    # Some clients decode malformed words too; what we cannot read as they do is refused.
    if _LOOSE_ENCODED_WORD.search(decoded):
        raise Refused("5.7.1 malformed encoded word")
    return decoded


def visible_text(value):
    """The header as a reader's client would render it: encoded words decoded, NFKC-folded.

    NFKC turns full-width and small-form at signs (U+FF20, U+FE6B) into "@", so a
    look-alike address is seen as the address it imitates.
    """
    return unicodedata.normalize("NFKC", _decode_encoded_words(_registered_charsets(unfold(value))))


def address_like_tokens(text):
    """Address-shaped tokens of rendered text, lower case, without trailing dots."""
    return [token.rstrip(".").lower() for token in ADDRESS_LIKE.findall(text)]


def mailbox(name, value):
    """The one addr-spec of a From/Sender value, lower case; Refused unless it is exactly one."""
    label = name + ":"
    value = _registered_charsets(unfold(value))
    if _CONTROL.search(value):
        raise Refused("5.7.1 %s header carries control characters" % label)
    try:
        parsed = _REGISTRY(name, value)
    except (ValueError, IndexError, TypeError) as exc:
        raise Refused("5.7.1 %s cannot be parsed" % label) from exc
    # Obsolete syntax ("Dr. Alice <a@b>") is common and unambiguous; anything else is not.
    defects = [d for d in parsed.defects if not isinstance(d, email.errors.ObsoleteHeaderDefect)]
    if defects:
        raise Refused("5.7.1 %s malformed (%s)" % (label, _printable(str(defects[0]))))
    if any(group.display_name is not None for group in parsed.groups):
        raise Refused("5.7.1 %s a group is not a mailbox" % label)
    if len(parsed.addresses) != 1:
        raise Refused("5.7.1 %s must name exactly one mailbox, not %d" % (label, len(parsed.addresses)))
    address = parsed.addresses[0].addr_spec
    if not _ADDR_SPEC.match(address):
        raise Refused("5.7.1 %s %s is not a plain address" % (label, _printable(address)))
    return address.lower()


def check_envelope(login, sender):
    """Refused unless an authenticated login gives a non-null envelope sender."""
    if not login:
        raise Refused("5.7.0 authentication required")
    if sender.strip() in ("", "<>"):
        raise Refused("5.7.1 a logged-in user may not send with a null sender")


def author_addresses(headers):
    """Every address a reader may take for the author of a message with these headers.

    `headers` is a list of (name, value) in the order received. Refused when From:
    is missing or repeated, Sender: is repeated, or a mailbox is not exactly one
    plain address.
    """
    seen = {name: [] for name in AUTHOR_HEADERS}
    for name, value in headers:
        key = name.lower()
        if key in seen:
            seen[key].append(value)
    if not seen["from"]:
        raise Refused("5.7.1 the message has no From: header")
    found = []
    for key in AUTHOR_HEADERS:
        values = seen[key]
        label = key.capitalize() + ":"
        name = key.capitalize()
        if len(values) > 1:
            raise Refused("5.7.1 %d %s headers; a message has at most one" % (len(values), label))
        for value in values:
            text = visible_text(value)
            owner = mailbox(name, value)
            tokens = address_like_tokens(text)
            # An "@" outside any address-shaped token still reads as an address ("ceo @ corp").
            if text.count("@") != len(tokens):
                raise Refused("5.7.1 %s shows an address in a form that cannot be checked" % label)
            found.append((label, owner))
            found.extend((label, token) for token in tokens)
    return found


def check_message(login, envelope_sender, headers, owners):
    """Refused unless `login` owns the envelope sender and every author address.

    `owners(address)` returns the logins that own an address (the sender-login
    table); it raises TableUnavailable when the table cannot be asked.
    """
    check_envelope(login, envelope_sender)
    wanted = [("MAIL FROM", envelope_sender.strip("<>").lower())] + author_addresses(headers)
    checked = set()
    for label, address in wanted:
        if address in checked:
            continue
        if login.lower() not in {owner.lower() for owner in owners(address)}:
            raise Refused("5.7.1 %s %s is not an address of %s" % (label, _printable(address), _printable(login)))
        checked.add(address)


# --- Postfix tables ----------------------------------------------------------
# The guard reads the very table `smtpd_sender_login_maps` names, so Postfix and the
# guard can never disagree on who owns an address.

# ldap_table(5) parameters the guard implements; any other is refused, so a table
# the guard would read differently from Postfix never starts.
LDAP_TABLE_DEFAULTS = {
    "server_host": "localhost",
    "server_port": "389",
    "version": "2",
    "search_base": "",
    "scope": "sub",
    "query_filter": "(mailacceptinggeneralid=%s)",
    "result_attribute": "maildrop",
    "result_format": "%s",
    "bind": "yes",
    "bind_dn": "",
    "bind_pw": "",
    "start_tls": "no",
    "tls_ca_cert_file": "",
    "tls_require_cert": "no",
    "timeout": "10",
}


def parse_table_spec(spec):
    """('ldap'|'texthash', path) of a Postfix table such as proxy:ldap:/etc/postfix/x.cf."""
    text = spec.strip()
    if text.startswith("proxy:"):
        text = text[len("proxy:") :]
    kind, _sep, path = text.partition(":")
    if kind not in ("ldap", "texthash") or not path.startswith("/") or re.search(r"[\s,]", path):
        raise ValueError("unsupported sender-login table %r: use one ldap: or texthash: table" % spec)
    return kind, path


def parse_ldap_table(text):
    """The settings of an ldap_table(5) file, defaults filled in; ValueError on what is not implemented."""
    settings = dict(LDAP_TABLE_DEFAULTS)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            raise ValueError("line %d: continuation lines are not supported" % number)
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or name not in LDAP_TABLE_DEFAULTS:
            raise ValueError("line %d: %r is not a setting the sender guard implements" % (number, name))
        settings[name] = value.strip()
    if settings["result_format"] != "%s":
        raise ValueError("result_format other than %s is not supported")
    if settings["scope"] not in ("sub", "one", "base"):
        raise ValueError("scope must be sub, one or base")
    hosts = settings["server_host"].replace(",", " ").split()
    if not hosts or not all(re.match(r"\Aldaps?://[^\s/]+/?\Z", host) for host in hosts):
        raise ValueError("server_host must be ldap:// or ldaps:// URIs")
    if re.search(r"%[^s%]", settings["query_filter"]):
        raise ValueError("query_filter may use only %s and %%")
    return settings


def ldap_filter(template, address, escape):
    """query_filter with %s replaced by the escaped address (Postfix escapes it the same way)."""
    return re.sub(r"%[s%]", lambda m: "%" if m.group(0) == "%%" else escape(address), template)


def parse_texthash(text):
    """{address: [owner, ...]} of a texthash table (`key value[, value...]` per line)."""
    table = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _sep, value = line.strip().partition(" ")
        table[key.lower()] = [owner.strip() for owner in value.replace(",", " ").split() if owner.strip()]
    return table


def lookup_keys(address):
    """The keys Postfix tries for an address in a sender-login table: the address, then @domain."""
    local, _sep, domain = address.rpartition("@")
    return [address, "@" + domain] if local and domain else [address]
