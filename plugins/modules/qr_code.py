#!/usr/bin/python
# Copyright: zerotrust.mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: qr_code
short_description: Write a QR code of a text as a PNG image
version_added: 0.3.0
description:
  - Renders O(data) as a QR code (for example an C(otpauth://) URI for an
    authenticator app) and writes it as a PNG file.
  - The image is rendered the same way every time, so the file is only
    rewritten when its content would differ; the new file is written next to
    the old one and moved into place atomically, created with mode C(0600).
  - O(data) is never logged or returned.
author: zerotrust.mailstack maintainers (@zerotrust)
requirements:
  - segno (pure Python) on the host that runs the module, usually the controller.
options:
  path:
    description: PNG file to write.
    type: path
    required: true
  data:
    description: Text to encode; it may be a secret.
    type: str
    required: true
  scale:
    description: Size of one QR module in pixels.
    type: int
    default: 8
  border:
    description: Width of the quiet zone around the code, in modules.
    type: int
    default: 4
  error:
    description: Error correction level (C(l) 7%, C(m) 15%, C(q) 25%, C(h) 30%).
    type: str
    default: m
    choices: [l, m, q, h]
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    description: Reports whether the image would change without writing it.
    support: full
  diff_mode:
    description: No diff of binary images is shown.
    support: none
  platform:
    description: Targets POSIX hosts.
    support: full
    platforms: posix
"""

EXAMPLES = r"""
- name: Write the QR code a user scans into an authenticator app
  zerotrust.mailstack.qr_code:
    path: /srv/mailstack/credentials/alice-totp.png
    data: "{{ totp_secret | zerotrust.mailstack.otpauth_uri('alice@corp.example', 'corp.example') }}"
    mode: "0600"
  delegate_to: localhost
  no_log: true
"""

RETURN = r"""
path:
  description: The PNG file.
  returned: success
  type: str
version:
  description: QR code version (1 to 40) the data needed.
  returned: success
  type: int
"""

import io
import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.zerotrust.mailstack.plugins.module_utils.file_output import (
    UnsafeTarget,
    read_existing,
)

try:
    import segno
except ImportError:
    segno = None
    SEGNO_IMPORT_ERROR = traceback.format_exc()
else:
    SEGNO_IMPORT_ERROR = None


def render_png(data, scale=8, border=4, error="m"):
    """The PNG bytes of a QR code of `data`; the same input always gives the same bytes."""
    if not isinstance(data, str) or not data:
        raise ValueError("data must be a non-empty string")
    if scale < 1 or border < 0:
        raise ValueError("scale must be at least 1 and border not negative")
    code = segno.make(data, error=error, micro=False, boost_error=False)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue(), code.version


def write_if_changed(path, content, check_mode=False):
    """Write `content` to `path` atomically unless it already holds it; True when it (would have) changed."""
    if read_existing(path, binary=True) == content:
        return False
    if not check_mode:
        directory = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".qr-", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            data=dict(type="str", required=True, no_log=True),
            scale=dict(type="int", default=8),
            border=dict(type="int", default=4),
            error=dict(type="str", default="m", choices=["l", "m", "q", "h"]),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if segno is None:
        module.fail_json(msg=missing_required_lib("segno"), exception=SEGNO_IMPORT_ERROR)
    params = module.params
    path = params["path"]
    try:
        content, version = render_png(params["data"], params["scale"], params["border"], params["error"])
    except (ValueError, segno.DataOverflowError) as exc:
        module.fail_json(msg="cannot render the QR code: %s" % exc)
    try:
        changed = write_if_changed(path, content, module.check_mode)
    except (UnsafeTarget, OSError) as exc:
        module.fail_json(msg="cannot write %s: %s" % (path, exc))
    if os.path.exists(path):
        file_args = module.load_file_common_arguments(params)
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(changed=changed, path=path, version=version)


if __name__ == "__main__":
    main()
