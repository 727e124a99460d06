"""read_existing: a module reads its destination without following a link a daemon planted."""

import os

import pytest
from ansible_collections.zerotrust.mailstack.plugins.module_utils.file_output import UnsafeTarget, read_existing


def test_a_regular_file_is_read_as_text_or_bytes(tmp_path):
    target = tmp_path / "zone"
    target.write_text("$ORIGIN corp.example.\n")
    assert read_existing(str(target)) == "$ORIGIN corp.example.\n"
    assert read_existing(str(target), binary=True) == b"$ORIGIN corp.example.\n"


def test_a_missing_file_has_no_content(tmp_path):
    assert read_existing(str(tmp_path / "absent")) is None


def test_a_link_is_refused_and_its_target_not_read(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:secret-hash\n")
    link = tmp_path / "zone"
    link.symlink_to(secret)
    with pytest.raises(UnsafeTarget, match="symbolic link") as refusal:
        read_existing(str(link))
    assert "secret-hash" not in str(refusal.value)


def test_a_dangling_link_is_refused_too(tmp_path):
    link = tmp_path / "zone"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafeTarget, match="symbolic link"):
        read_existing(str(link))


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "zone"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeTarget, match="not a regular file"):
        read_existing(str(fifo))
