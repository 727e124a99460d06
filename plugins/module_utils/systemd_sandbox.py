# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemd sandbox every daemon of the stack runs in, written in one place.

Each daemon's unit or drop-in names only what it needs beyond the baseline (the
paths it writes, the capabilities and address families it uses, its umask); the
baseline itself (no new privileges, read-only system, no home, private /tmp, no
cgroup writes) and the seccomp part are the same for all. Seccomp filters cannot
be installed inside a container, so there the seccomp part is left out and a
comment says why.
"""

import re

from ansible_collections.zerotrust.mailstack.plugins.module_utils.validation import InputError

BASELINE = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "{read_write_paths}",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "ProtectControlGroups=yes",
    "CapabilityBoundingSet={capabilities}",
    "{umask}",
)
SECCOMP = (
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "RestrictAddressFamilies={address_families}",
    "RestrictNamespaces=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallFilter=@system-service",
    "SystemCallArchitectures=native",
)
NO_SECCOMP = "# Seccomp filters cannot be installed inside this container; on a host they are."
ADDRESS_FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK")
OPTIONS = {"read_write_paths", "capabilities", "address_families", "umask"}
_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
_CAPABILITY = re.compile(r"CAP_[A-Z_]+")
_UMASK = re.compile(r"0[0-7]{3}")


def _words(needs, key, pattern, default=()):
    words = needs.get(key, list(default))
    if isinstance(words, str) or not isinstance(words, (list, tuple)):
        raise InputError(key, "must be a list, got %s" % type(words).__name__)
    for word in words:
        if not isinstance(word, str) or not pattern(word):
            raise InputError(key, "%r is not allowed here" % (word,))
    return " ".join(words)


def systemd_sandbox(needs, seccomp):
    """The [Service] sandbox lines of a daemon with these `needs`, as text.

    `needs` may hold read_write_paths (absolute paths), capabilities (CAP_*; none
    when left out), address_families (default AF_UNIX AF_INET AF_INET6) and umask
    (four octal digits). `seccomp` is false inside a container.
    """
    if not isinstance(needs, dict):
        raise InputError("needs", "must be a mapping, got %s" % type(needs).__name__)
    unknown = set(needs) - OPTIONS
    if unknown:
        raise InputError("needs", "unknown keys %s (known: %s)" % (sorted(unknown), sorted(OPTIONS)))
    if not isinstance(seccomp, bool):
        raise InputError("seccomp", "must be a boolean, got %r" % (seccomp,))
    paths = _words(needs, "read_write_paths", _PATH.fullmatch)
    umask = needs.get("umask")
    if umask is not None and not (isinstance(umask, str) and _UMASK.fullmatch(umask)):
        raise InputError("umask", "must be four octal digits as a string, got %r" % (umask,))
    values = dict(
        read_write_paths="ReadWritePaths=%s" % paths if paths else "",
        capabilities=_words(needs, "capabilities", _CAPABILITY.fullmatch),
        umask="UMask=%s" % umask if umask else "",
        address_families=_words(
            needs, "address_families", ADDRESS_FAMILIES.__contains__, default=("AF_UNIX", "AF_INET", "AF_INET6")
        ),
    )
    lines = [line.format(**values) for line in BASELINE]
    lines += [line.format(**values) for line in SECCOMP] if seccomp else [NO_SECCOMP]
    return "\n".join(line for line in lines if line)
