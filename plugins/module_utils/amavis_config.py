# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""amavis and clamd configuration as data.

amavis reads its configuration as Perl: a value written into it unchecked is code
run as the amavis user. Every value is therefore typed and quoted here, and what
cannot be quoted safely (a quote in a regular expression, a control character,
an unknown constant) is refused with a message naming the variable.
"""

import math
import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError, check_text

# `$name`, `@name` or `%name`: the sigil says how the value is written. `$name{key}`
# sets one element of a hash and leaves the others (amavis fills some hashes,
# %policy_bank among them, before it reads its configuration).
_AMAVIS_NAME = re.compile(r"[$@%][A-Za-z_][A-Za-z0-9_]*|\$(?P<hash>[A-Za-z_][A-Za-z0-9_]*)\{(?P<key>[A-Za-z0-9_.-]+)\}")
# amavis's own constants a setting may name (message destinies).
AMAVIS_CONSTANTS = ("D_PASS", "D_DISCARD", "D_BOUNCE", "D_REJECT", "D_TEMPFAIL")
# Perl's own variables: setting them would change how amavis runs, not what it
# decides ($ENV{PATH} pointing at a writable directory runs planted decoders).
PERL_SPECIAL = ("ENV", "INC", "SIG", "ARGV", "ARGVOUT", "STDIN", "STDOUT", "STDERR", "_")
_REGEX_FLAGS = re.compile(r"[imsx]*")
_CLAMD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_PERL_CODE = re.compile(r"\(\?\??\{")
_HASH_KEY = re.compile(r"[A-Za-z0-9_.-]+")
# Settings the role decides and an override may not change: each would let mail
# through unscanned (bypasses, "lovers", destinies, scanners, policy banks chosen
# by port, address or sender), let others hand amavis mail, or send scanned mail
# elsewhere. Names without their sigil; a hash element counts as its hash.
GUARDED = re.compile(
    r"bypass_\w*|\w*_lovers(_maps)?|final_\w+_destiny|\w*policy_bank\w*|interface_policy|client_ipaddr_policy"
    r"|av_scanners(_backup)?|virus_scanners_failure_is_fatal|mynetworks(_maps)?|inet_acl|inet_socket_\w+"
    r"|tls_security_level_(in|out)|smtpd?_tls_(server|client)_options|forward_method|notify_method"
)


def _perl_string(value, path):
    check_text(value, path)
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")


def _perl_regex(spec, path):
    """{regex: <pattern>, flags: i}: qr'<pattern>'<flags>. Inside qr'' nothing is
    interpolated; a quote would end it, so it is refused rather than escaped."""
    unknown = set(spec) - {"regex", "flags"}
    if unknown:
        raise InputError(path, "a regex takes only 'regex' and 'flags', not %s" % ", ".join(sorted(unknown)))
    pattern = check_text(spec["regex"], "%s.regex" % path)
    if not pattern or "'" in pattern:
        raise InputError("%s.regex" % path, "must be a non-empty pattern without a single quote")
    # Perl runs the code of (?{...}) and (??{...}) in a literal pattern.
    if _PERL_CODE.search(pattern):
        raise InputError("%s.regex" % path, "must not hold Perl code ((?{...}) or (??{...}))")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InputError("%s.regex" % path, "is not a regular expression (%s)" % exc) from None
    flags = spec.get("flags", "")
    if not isinstance(flags, str) or not _REGEX_FLAGS.fullmatch(flags):
        raise InputError("%s.flags" % path, "must be some of the letters i, m, s, x")
    return "qr'%s'%s" % (pattern, flags)


def _perl_scalar(value, path):
    if value is None:
        return "undef"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(path, "must be a finite number")
        return repr(value)
    if isinstance(value, str):
        return _perl_string(value, path)
    if isinstance(value, dict):
        if "regex" in value:
            return _perl_regex(value, path)
        if set(value) == {"regexes"}:
            items = value["regexes"]
            if not isinstance(items, list) or not items:
                raise InputError("%s.regexes" % path, "must be a non-empty list of regexes")
            regexes = []
            for index, item in enumerate(items):
                where = "%s.regexes[%d]" % (path, index)
                if not isinstance(item, dict) or "regex" not in item:
                    raise InputError(where, "must be a {regex, flags} mapping")
                regexes.append(_perl_regex(item, where))
            return "new_RE(%s)" % ", ".join(regexes)
        if set(value) == {"constant"}:
            if value["constant"] not in AMAVIS_CONSTANTS:
                raise InputError(path, "%r is not one of %s" % (value["constant"], ", ".join(AMAVIS_CONSTANTS)))
            return value["constant"]
        return "{%s}" % _perl_pairs(value, path)
    if isinstance(value, list):
        return "[%s]" % ", ".join(_perl_scalar(item, "%s[%d]" % (path, i)) for i, item in enumerate(value))
    raise InputError(path, "must be a string, number, boolean, null, list, mapping, {regex}, {regexes} or {constant}")


def _perl_pairs(mapping, path):
    """'key' => value, ... of a Perl hash (keys quoted, values scalars or nested mappings)."""
    pairs = []
    for name, item in mapping.items():
        if not isinstance(name, str) or not _HASH_KEY.fullmatch(name):
            raise InputError(path, "%r is not a key name (letters, digits, '_', '.', '-')" % (name,))
        pairs.append("'%s' => %s" % (name, _perl_scalar(item, "%s.%s" % (path, name))))
    return ", ".join(pairs)


def render_amavis_conf(conf, path="amavis_conf"):
    """Perl assignments for amavis, one per setting, in the mapping's order.

    Keys carry their sigil: `$name` takes a scalar, `$name{key}` a scalar as one
    element of a hash, `@name` a list of scalars, `%name` a mapping of names to
    scalars. Scalars are strings (single-quoted), numbers, booleans (1/0), null
    (undef), lists (array references), mappings (hash references), {regex, flags}
    (qr''), {regexes: [...]} (new_RE) and {constant: D_...}. A key whose value is
    null is left out, so an override can remove a setting.
    """
    if not isinstance(conf, dict):
        raise InputError(path, "must be a mapping of amavis settings")
    lines = []
    for key, value in conf.items():
        where = "%s.%s" % (path, key)
        match = _AMAVIS_NAME.fullmatch(key) if isinstance(key, str) else None
        if not match:
            raise InputError(where, "%r is not an amavis setting name ($name, $name{key}, @name or %%name)" % (key,))
        if (match.group("hash") or key[1:]) in PERL_SPECIAL:
            raise InputError(where, "%r is one of Perl's own variables, not an amavis setting" % (key,))
        if value is None:
            continue
        if match.group("hash"):
            lines.append("$%s{'%s'} = %s;" % (match.group("hash"), match.group("key"), _perl_scalar(value, where)))
            continue
        sigil = key[0]
        if sigil == "$":
            text = _perl_scalar(value, where)
        elif sigil == "@":
            if not isinstance(value, list):
                raise InputError(where, "an @ setting takes a list")
            text = "(%s)" % ", ".join(_perl_scalar(item, "%s[%d]" % (where, i)) for i, item in enumerate(value))
        else:
            if not isinstance(value, dict):
                raise InputError(where, "a %% setting takes a mapping")
            text = "(%s)" % _perl_pairs(value, where)
        lines.append("%s = %s;" % (key, text))
    return "\n".join(lines) + "\n"


def check_overrides(conf, path="amavis_conf"):
    """Return the operator's settings unchanged, refusing any the role decides (GUARDED)."""
    if not isinstance(conf, dict):
        raise InputError(path, "must be a mapping of amavis settings")
    for key in conf:
        match = _AMAVIS_NAME.fullmatch(key) if isinstance(key, str) else None
        name = (match.group("hash") or key[1:]) if match else None
        if name and GUARDED.fullmatch(name):
            raise InputError(
                "%s.%s" % (path, key),
                "is decided by the role (it would let mail through unscanned, let other hosts hand amavis"
                " mail or send scanned mail elsewhere); use the role's variables",
            )
    return conf


def render_clamd_conf(conf, path="clamd_conf"):
    """clamd.conf text: one `Name value` line per setting, booleans yes/no, null left out."""
    if not isinstance(conf, dict):
        raise InputError(path, "must be a mapping of clamd settings")
    lines = []
    for key, value in conf.items():
        where = "%s.%s" % (path, key)
        if not isinstance(key, str) or not _CLAMD_NAME.fullmatch(key):
            raise InputError(where, "%r is not a clamd setting name (letters and digits)" % (key,))
        if value is None:
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = str(value)
        elif isinstance(value, str) and value.strip() and "#" not in value:
            text = check_text(value, where).strip()
        else:
            raise InputError(where, "must be a non-empty string without '#', a number or a boolean")
        lines.append("%s %s" % (key, text))
    return "\n".join(lines) + "\n"


# A SpamAssassin rule name: upper-case letters, digits and underscores (a leading
# underscore would make it a meta rule's hidden sub-rule).
_SA_RULE_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,49}")
# A header a rule looks at, with SpamAssassin's optional :raw, :addr or :name.
_SA_HEADER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(:(raw|addr|name))?")
# The tests a rule may run, each on a regular expression.
SA_RULE_TYPES = ("body", "rawbody", "header", "full", "uri")


def _sa_regex(pattern, flags, path):
    """/<pattern>/<flags> for a SpamAssassin rule: one line, no Perl code, and no
    slash (it would end the pattern; write \\x2f)."""
    check_text(pattern, path)
    if not pattern or "/" in pattern:
        raise InputError(path, "must be a non-empty pattern without '/' (write \\x2f for a slash)")
    if _PERL_CODE.search(pattern):
        raise InputError(path, "must not hold Perl code ((?{...}) or (??{...}))")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InputError(path, "is not a regular expression (%s)" % exc) from None
    if not isinstance(flags, str) or not _REGEX_FLAGS.fullmatch(flags):
        raise InputError("%s.flags" % path.rsplit(".", 1)[0], "must be some of the letters i, m, s, x")
    return "/%s/%s" % (pattern, flags)


def render_spam_rules(rules, path="amavis_spam_rules"):
    """SpamAssassin rules of the site's own, as local.cf lines.

    Each rule is a mapping: `name`, one test (`body`, `rawbody`, `full` or `uri`: a
    regular expression; `header`: a header name with `regex`), optional `flags`, a
    `score` and an optional `description`. Anything else, or a value that could add
    a line or run code, is refused.
    """
    if not isinstance(rules, list):
        raise InputError(path, "must be a list of rules")
    lines = []
    seen = set()
    for index, rule in enumerate(rules):
        where = "%s[%d]" % (path, index)
        if not isinstance(rule, dict):
            raise InputError(where, "must be a mapping (name, a test, score)")
        unknown = set(rule) - {"name", "regex", "flags", "score", "description", *SA_RULE_TYPES}
        if unknown:
            raise InputError(where, "unknown keys: %s" % ", ".join(sorted(map(str, unknown))))
        name = rule.get("name")
        if not isinstance(name, str) or not _SA_RULE_NAME.fullmatch(name):
            raise InputError("%s.name" % where, "%r is not a rule name (A-Z, 0-9, _; a letter first)" % (name,))
        if name in seen:
            raise InputError("%s.name" % where, "%s is defined twice" % name)
        seen.add(name)
        tests = [kind for kind in SA_RULE_TYPES if kind in rule]
        if len(tests) != 1:
            raise InputError(where, "must have exactly one of %s" % ", ".join(SA_RULE_TYPES))
        (kind,) = tests
        flags = rule.get("flags", "")
        if kind == "header":
            header = rule["header"]
            if not isinstance(header, str) or not _SA_HEADER.fullmatch(header):
                raise InputError("%s.header" % where, "%r is not a header name" % (header,))
            if "regex" not in rule:
                raise InputError(where, "a header rule needs a regex")
            test = "%s =~ %s" % (header, _sa_regex(rule["regex"], flags, "%s.regex" % where))
        else:
            if "regex" in rule:
                raise InputError(where, "regex belongs to header rules; a %s rule's own value is its pattern" % kind)
            test = _sa_regex(rule[kind], flags, "%s.%s" % (where, kind))
        score = rule.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InputError("%s.score" % where, "must be a number")
        if not -100 <= score <= 100:
            raise InputError("%s.score" % where, "must be between -100 and 100")
        lines.append("%s %s %s" % (kind, name, test))
        lines.append("score %s %s" % (name, score))
        description = rule.get("description")
        if description is not None:
            check_text(description, "%s.description" % where)
            if description.strip():
                lines.append("describe %s %s" % (name, description.strip()))
    return "".join(line + "\n" for line in lines)
