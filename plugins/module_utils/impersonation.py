# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does a message from outside pose as one of ours? The inbound half of the sender guard.

Mail from outside may not use our domains (DMARC, ZT-DMARC-03), so an impostor uses
what DMARC does not check: a display name that is a colleague's name or shows one of
our addresses, or a domain that only looks like ours (corp-example.net, c0rp.example,
xn-- spellings). `marks()` names each such trick in a From header; the milter puts the
reasons in a header of ours and a warning in the Subject. It never refuses: a real
colleague writing from a private address gets the warning too, and that is the point.

Standard library only: the daemon imports this file as it is on the mail host.
"""

import re
import unicodedata

try:
    from ansible_collections.zerotrust.mailstack.plugins.module_utils import sender_policy
except ImportError:  # on the mail host, beside sender_policy.py
    import sender_policy

# Letters of other scripts, and digits, that read as Latin letters. NFKC has already
# folded full-width and mathematical forms; these are what it leaves alone.
_CONFUSABLE = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "ω": "w",
        # Latin look-alikes and digits
        "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ß": "ss",
        "0": "o", "1": "l", "3": "e", "5": "s", "|": "l",
    }
)  # fmt: skip
# Letter pairs that read as one letter in most fonts.
_DIGRAPHS = (("rn", "m"), ("vv", "w"), ("cl", "d"))
_SEPARATORS = re.compile(r"[^a-z]+")
# Shorter names would match too much by one changed letter.
_MIN_EDIT_LENGTH = 6


def _without_marks(text):
    """Accents dropped (é -> e): a reader hardly sees them in a sender's name."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _idna_decoded(text):
    """xn-- labels shown as the Unicode a mail client may display."""

    def decode(match):
        try:
            return match.group(0).encode("ascii").decode("idna")
        except UnicodeError:
            return match.group(0)

    return re.sub(r"xn--[a-z0-9-]+", decode, text, flags=re.IGNORECASE)


def skeleton(text):
    """What `text` looks like, as lower-case Latin letters and separators."""
    folded = _without_marks(unicodedata.normalize("NFKC", _idna_decoded(text)).casefold()).translate(_CONFUSABLE)
    for pair, letter in _DIGRAPHS:
        folded = folded.replace(pair, letter)
    return folded


def words(text):
    """The words a reader sees in `text`, each as its skeleton."""
    return [word for word in _SEPARATORS.split(skeleton(text)) if word]


def _compact(domain):
    return "".join(words(domain))


def _one_edit_apart(a, b):
    """True when b is a with one letter changed, added, removed or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def is_ours(domain, domains):
    domain = domain.lower().rstrip(".")
    return any(domain == ours or domain.endswith("." + ours) for ours in domains)


def imitated_domain(domain, domains):
    """The domain of ours that `domain` (not one of ours) imitates, or None.

    It imitates ours when it looks the same (confusable letters, xn-- spellings), is one
    edit away, or starts with our name spelt with other separators (corp-example.net,
    corp.example.evil.net, corpexample.com)."""
    if is_ours(domain, domains):
        return None
    theirs = _compact(domain)
    for ours in domains:
        mine = _compact(ours)
        if skeleton(domain) == skeleton(ours) or theirs.startswith(mine):
            return ours
        if len(mine) >= _MIN_EDIT_LENGTH and _one_edit_apart(theirs, mine):
            return ours
    return None


def _name_in(name_words, shown):
    """A directory name in what a reader sees: all its words, in any order, in the display
    name or an address's local part (alice.example@), not in a domain (alice@example.net
    is not Alice Example); a one-word name only as the whole display name."""
    if len(name_words) == 1:
        return words(re.sub(r"<[^>]*>", "", shown)) == name_words
    locals_only = sender_policy.ADDRESS_LIKE.sub(lambda match: match.group(0).rpartition("@")[0], shown)
    return set(name_words) <= set(words(locals_only))


def marks(from_values, names, domains):
    """Why the From headers of a message from outside pose as one of ours (empty: they do not).

    `names` are the directory users' full names; `domains` are ours."""
    domains = [domain.lower().rstrip(".") for domain in domains]
    reasons = []
    for value in from_values:
        try:
            shown = sender_policy.visible_text(value)
        except sender_policy.Refused:
            shown = unicodedata.normalize("NFKC", sender_policy.unfold(value))
        seen = words(shown)
        for name in names:
            name_words = words(name)
            if name_words and _name_in(name_words, shown):
                reasons.append("shows the name of %s" % name)
        for token in sender_policy.address_like_tokens(shown):
            domain = token.rpartition("@")[2]
            imitated = imitated_domain(domain, domains)
            if is_ours(domain, domains):
                reasons.append("shows the address %s of ours" % token)
            elif imitated:
                reasons.append("uses the domain %s, which looks like %s" % (domain, imitated))
        shown_skeleton = " ".join(seen)
        for ours in domains:
            if " ".join(words(ours)) in shown_skeleton and not any(ours in reason for reason in reasons):
                reasons.append("shows the name of %s" % ours)
    return list(dict.fromkeys(reasons))


def tagged_subject(subject, tags):
    """The Subject with each tag in front once (a reply keeps a tag, so it is not added twice)."""
    subject = subject or ""
    for tag in reversed([tag for tag in tags if tag]):
        if tag not in subject:
            subject = "%s %s" % (tag, subject) if subject else tag
    return subject
