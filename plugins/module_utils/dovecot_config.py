# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render dovecot.conf from nested data, refusing anything that could inject a line or a section.

The input is a mapping: a scalar or a list of scalars is a setting (`key = value`),
a mapping is a section whose key is the section head (`service imap-login`,
`inet_listener imaps`, `passdb lua`). Every key and value is checked here, so the
template only prints the returned text.
"""

import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError, check_text

# Used with fullmatch: `$` also matches before a trailing newline.
_SETTING = re.compile(r"[a-z][a-z0-9_]*")
# A section type and an optional name; the name may be a listener path (login/login).
_SECTION = re.compile(r"[a-z][a-z0-9_]*( [A-Za-z0-9_.@/-]+)?")
# Dovecot variables (%{user}, %{user | lower}, 2.3's %{rip}) are the only braces a value may hold.
_VARIABLE = re.compile(r"%\{[^{}]*\}")
# A value Dovecot would cut short or misread unquoted: a comment sign or an edge space.
_NEEDS_QUOTES = re.compile(r"#|^\s|\s$")

# Settings whose value may be `<path` (Dovecot reads the file's content): 2.3's
# certificate settings. 2.4 names the files with *_file settings instead.
FILE_INCLUDE_KEYS = frozenset({"ssl_cert", "ssl_key", "ssl_ca", "ssl_alt_cert", "ssl_alt_key", "ssl_dh"})

# The special-use flags of RFC 6154 (and RFC 8457's \\Important): the only values with a
# backslash, and only in a mailbox's special_use setting.
SPECIAL_USE = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Important", "\\Junk", "\\Sent", "\\Trash"})
# A mailbox the role names (a section head and a Sieve string): one level, no spaces,
# quotes, wildcards or hierarchy separators.
_MAILBOX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

INDENT = "  "


def _scalar(value, path, key, include_keys):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise InputError(path, "must be a string, number, boolean, list or mapping, got %s" % type(value).__name__)
    check_text(value, path)
    if key == "special_use":
        if value not in SPECIAL_USE:
            raise InputError(path, "%r is not a special-use flag (%s)" % (value, ", ".join(sorted(SPECIAL_USE))))
        return value
    if "{" in _VARIABLE.sub("", value) or "}" in _VARIABLE.sub("", value):
        raise InputError(path, "braces are only allowed in %{...} variables")
    if value.lstrip().startswith("<") and key not in include_keys:
        raise InputError(path, "a value starting with '<' reads a file; only %s may" % ", ".join(sorted(include_keys)))
    if '"' in value or "\\" in value:
        raise InputError(path, "quotes and backslashes are not allowed in a value")
    if _NEEDS_QUOTES.search(value):
        return '"%s"' % value
    return value


def format_value(value, path, key, include_keys=FILE_INCLUDE_KEYS):
    """A setting value on one line: booleans are yes/no, lists are joined with spaces."""
    if isinstance(value, (list, tuple)):
        items = []
        for index, item in enumerate(value):
            item_path = "%s[%d]" % (path, index)
            if item is None or isinstance(item, (list, tuple, dict)):
                raise InputError(item_path, "list items must be strings, numbers or booleans")
            text = _scalar(item, item_path, key, include_keys)
            # Dovecot splits the joined list at spaces (quotes do not help in 2.3's
            # import_environment): a space would smuggle in another item, e.g. LD_PRELOAD=.
            if re.search(r"\s", text):
                raise InputError(item_path, "a list item must not contain whitespace (it would split into two)")
            items.append(text)
        return " ".join(item for item in items if item)
    return _scalar(value, path, key, include_keys)


def _render(conf, path, depth, include_keys, lines):
    if not isinstance(conf, dict):
        raise InputError(path, "must be a mapping of settings and sections")
    for key, value in conf.items():
        item_path = "%s.%s" % (path, key)
        if not isinstance(key, str):
            raise InputError(item_path, "keys must be strings, got %s" % type(key).__name__)
        check_text(key, item_path)
        if value is None:
            continue
        prefix = INDENT * depth
        if isinstance(value, dict):
            if not _SECTION.fullmatch(key):
                raise InputError(item_path, "%r is not a Dovecot section head (type [name])" % key)
            lines.append("%s%s {" % (prefix, key))
            _render(value, item_path, depth + 1, include_keys, lines)
            lines.append("%s}" % prefix)
        else:
            if not _SETTING.fullmatch(key):
                raise InputError(item_path, "%r is not a Dovecot setting name" % key)
            text = format_value(value, item_path, key, include_keys)
            lines.append(("%s%s = %s" % (prefix, key, text)).rstrip())


def render_dovecot_conf(conf, include_keys=None, path="dovecot_conf"):
    """Return dovecot.conf text (ending with a newline) in the mapping's own order.

    `include_keys` adds setting names that may take a `<file` value to FILE_INCLUDE_KEYS.
    Null values are left out, so an override can remove a setting or a whole section.
    """
    allowed = FILE_INCLUDE_KEYS | frozenset(include_keys or ())
    lines = []
    _render(conf, path, 0, allowed, lines)
    return "\n".join(lines) + "\n"


def check_mailbox_name(name, path):
    """A top-level mailbox name the role writes into dovecot.conf and a Sieve script."""
    check_text(name, path)
    if not _MAILBOX.fullmatch(name):
        raise InputError(path, "%r is not a mailbox name (letters, digits, '_', '-'; a letter or digit first)" % name)
    if name.upper() == "INBOX":
        raise InputError(path, "must not be INBOX")
    return name


def render_spam_sieve(mailbox, path="dovecot_junk_mailbox"):
    """The Sieve script that files a message amavis marked as spam into `mailbox`.

    Only `X-Spam-Flag: YES` counts, which amavis writes from its tag2 level and which it
    removes from what a sender wrote for local recipients, so a sender can neither
    move a message into the mailbox nor keep it out. The mailbox is created when missing;
    `stop` ends the delivery's scripts there, so no later script files it elsewhere.
    """
    check_mailbox_name(mailbox, path)
    return (
        'require ["fileinto", "mailbox"];\n'
        'if header :is "X-Spam-Flag" "YES" {\n'
        '  fileinto :create "%s";\n'
        "  stop;\n"
        "}\n" % mailbox
    )
