"""The otpauth_uri filter and the qr_code module that user_enroll.yml uses."""

import os
import stat
import struct
import zlib

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.zerotrust.mailstack.plugins.filter.identity import FilterModule
from ansible_collections.zerotrust.mailstack.plugins.module_utils import mail_auth
from ansible_collections.zerotrust.mailstack.plugins.modules import qr_code

segno = pytest.importorskip("segno")

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
URI = mail_auth.otpauth_uri(SECRET, "alice@corp.example", "corp.example")


def otpauth_uri(*args):
    return FilterModule().filters()["otpauth_uri"](*args)


def test_filter_is_mail_auth_otpauth_uri():
    assert otpauth_uri(SECRET.lower(), "alice@corp.example", "corp.example") == URI
    assert URI.startswith("otpauth://totp/corp.example:alice@corp.example?secret=%s&issuer=corp.example" % SECRET)


@pytest.mark.parametrize(
    ("secret", "account", "issuer"),
    [
        ("not base32!", "alice@corp.example", "corp.example"),
        (SECRET, "alice@corp.example\n", "corp.example"),
        (SECRET, "alice", "corp:example"),
        (SECRET, "", "corp.example"),
    ],
)
def test_filter_refuses_bad_input_without_echoing_the_secret(secret, account, issuer):
    with pytest.raises(AnsibleFilterError, match="otpauth_uri") as err:
        otpauth_uri(secret, account, issuer)
    assert SECRET not in str(err.value)


def png_chunks(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def test_png_is_deterministic_and_sized_by_version_scale_and_border():
    first, version = qr_code.render_png(URI, scale=4, border=2)
    second, _ = qr_code.render_png(URI, scale=4, border=2)
    assert first == second
    chunks = png_chunks(first)
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    side = (17 + 4 * version + 2 * 2) * 4
    assert (width, height) == (side, side)


def test_png_depends_on_the_data():
    assert qr_code.render_png(URI)[0] != qr_code.render_png(URI.replace("alice", "bob"))[0]
    expected = segno.make(URI, error="m", micro=False, boost_error=False)
    assert qr_code.render_png(URI)[1] == expected.version


@pytest.mark.parametrize(("data", "scale", "border"), [("", 8, 4), (None, 8, 4), ("x", 0, 4), ("x", 8, -1)])
def test_bad_render_arguments_are_refused(data, scale, border):
    with pytest.raises(ValueError):
        qr_code.render_png(data, scale, border)


def test_write_only_when_content_differs(tmp_path):
    path = str(tmp_path / "alice-totp.png")
    content, _ = qr_code.render_png(URI)
    assert qr_code.write_if_changed(path, content) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    inode = os.stat(path).st_ino
    assert qr_code.write_if_changed(path, content) is False
    assert os.stat(path).st_ino == inode
    other, _ = qr_code.render_png(URI.replace("alice", "bob"))
    assert qr_code.write_if_changed(path, other) is True
    with open(path, "rb") as handle:
        assert handle.read() == other
    assert sorted(os.listdir(tmp_path)) == ["alice-totp.png"]  # no temporary file left behind


def test_check_mode_writes_nothing(tmp_path):
    path = str(tmp_path / "alice-totp.png")
    content, _ = qr_code.render_png(URI)
    assert qr_code.write_if_changed(path, content, check_mode=True) is True
    assert not os.path.exists(path)
