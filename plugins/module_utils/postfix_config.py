# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render Postfix main.cf and master.cf from data, refusing anything that could inject a line.

main.cf is a mapping of parameter name to value; master.cf a mapping of service
name to its fields. Every key, value and field is checked here, so a template
only loops over the returned lines.
"""

import ipaddress
import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import (
    InputError,
    check_address_or_network,
    check_text,
)

# Used with fullmatch: `$` also matches before a trailing newline.
_PARAM = re.compile(r"[a-z][A-Za-z0-9_]*")  # smtp_tls_CAfile has capitals
# A master.cf service name: a word, or [address]/address with an optional :port.
_SERVICE = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]|[0-9.]+):?[A-Za-z0-9_.-]*")
_WORD = re.compile(r"[^\s{}]+")
MASTER_TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")
MASTER_FIELDS = ("type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command", "args", "options")


def format_value(value, path):
    """A Postfix parameter value on one line: lists join with ', ', booleans are yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return check_text(value, path).strip()
    if isinstance(value, (list, tuple)):
        items = [format_value(item, "%s[%d]" % (path, index)) for index, item in enumerate(value)]
        return ", ".join(item for item in items if item)
    raise InputError(path, "must be a string, number, boolean or list, got %s" % type(value).__name__)


def check_param_name(name, path, known=None):
    check_text(name, path)
    if not _PARAM.fullmatch(name):
        raise InputError(path, "%r is not a Postfix parameter name" % name)
    if known is not None and name not in known and not _is_service_override(name, known):
        raise InputError(path, "%r is not a parameter this Postfix knows" % name)
    return name


def _is_service_override(name, known):
    # `submission_smtpd_tls_security_level` style names are allowed when the part
    # after the service prefix is a known parameter (used with -o in master.cf).
    parts = name.split("_")
    return any("_".join(parts[i:]) in known for i in range(1, len(parts)))


def render_main_cf(params, known=None):
    """Return main.cf lines (`name = value`) sorted by name; null values are left out."""
    if not isinstance(params, dict):
        raise InputError("postfix_main_cf", "must be a mapping of parameter names to values")
    known = set(known) if known else None
    lines = []
    for name in sorted(params):
        path = "postfix_main_cf.%s" % name
        check_param_name(name, path, known)
        if params[name] is None:
            continue
        lines.append("%s = %s" % (name, format_value(params[name], path)))
    return lines


def _flag(value, path):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "y" if value else "n"
    if isinstance(value, int):
        return str(value)
    text = check_text(value, path)
    if not re.fullmatch(r"y|n|-|[0-9]+\??", text):
        raise InputError(path, "%r must be y, n, - or a number" % text)
    return text


def _option(name, value, path, known):
    check_param_name(name, path, known)
    text = format_value(value, path)
    if "{" in text or "}" in text:
        raise InputError(path, "braces are not allowed in a master.cf option value")
    if _WORD.fullmatch(text):
        return "  -o %s=%s" % (name, text)
    # Postfix 3.0+ reads an option with spaces in { name = value } form.
    return "  -o { %s = %s }" % (name, text)


def render_master_cf(services, known=None):
    """Return master.cf lines, one service entry (plus its -o lines) per mapping key."""
    if not isinstance(services, dict):
        raise InputError("postfix_master_cf", "must be a mapping of service names to entries")
    known = set(known) if known else None
    lines = []
    for key in sorted(
        services, key=lambda k: (str(services[k].get("type", "")) if isinstance(services[k], dict) else "", k)
    ):
        path = "postfix_master_cf.%s" % key
        entry = services[key]
        if entry is None:
            continue
        check_text(key, path)
        if not isinstance(entry, dict):
            raise InputError(path, "must be a mapping with type and command")
        unknown = set(entry) - set(MASTER_FIELDS) - {"name"}
        if unknown:
            raise InputError(path, "unknown fields %s" % ", ".join(sorted(unknown)))
        name = entry.get("name", key)
        check_text(name, path + ".name")
        if not _SERVICE.fullmatch(name):
            raise InputError(path + ".name", "%r is not a master.cf service name" % name)
        if entry.get("type") not in MASTER_TYPES:
            raise InputError(path + ".type", "must be one of %s" % ", ".join(MASTER_TYPES))
        command = entry.get("command")
        if not isinstance(command, str) or not _WORD.fullmatch(check_text(command, path + ".command")):
            raise InputError(path + ".command", "must be a single word naming the daemon")
        args = entry.get("args") or []
        if not isinstance(args, list):
            raise InputError(path + ".args", "must be a list")
        words = []
        for index, arg in enumerate(args):
            text = check_text(str(arg), "%s.args[%d]" % (path, index))
            if not _WORD.fullmatch(text):
                raise InputError("%s.args[%d]" % (path, index), "%r must be one word" % text)
            words.append(text)
        fields = [
            name,
            entry["type"],
            _flag(entry.get("private"), path + ".private"),
            _flag(entry.get("unpriv"), path + ".unpriv"),
            _flag(entry.get("chroot"), path + ".chroot"),
            _flag(entry.get("wakeup"), path + ".wakeup"),
            _flag(entry.get("maxproc"), path + ".maxproc"),
            " ".join([command] + words),
        ]
        lines.append("%-12s %-5s %-7s %-7s %-7s %-7s %-7s %s" % tuple(fields))
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            raise InputError(path + ".options", "must be a mapping of parameter names to values")
        for option in sorted(options):
            if options[option] is not None:
                lines.append(_option(option, options[option], "%s.options.%s" % (path, option), known))
    return lines


def render_cidr_map(networks, result, path):
    """Lines of a Postfix cidr table giving every address or network `result`.

    Addresses become one-host networks; IPv6 is written without Postfix's brackets."""
    if not isinstance(networks, (list, tuple)):
        raise InputError(path, "must be a list of addresses or networks")
    check_text(result, path + " (result)")
    lines = []
    for index, value in enumerate(networks):
        where = "%s[%d]" % (path, index)
        text = value.replace("[", "").replace("]", "") if isinstance(value, str) else value
        check_address_or_network(text, where)
        lines.append("%s %s" % (ipaddress.ip_network(text, strict=True), result))
    return lines
