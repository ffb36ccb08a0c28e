"""`reelgate doctor` reports whether the SMTP server takes a connection and the login, as sending would."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelgate.doctor import diagnose
from tests.conftest import make_settings
from tests.mail.conftest import BadServer, Mailbox


def email_check(checks: list) -> tuple[bool, str, bool]:  # type: ignore[type-arg]
    found = [c for c in checks if c.name == "email"]
    assert len(found) == 1, checks
    return found[0].ok, found[0].detail, found[0].fatal


async def test_doctor_logs_in_to_the_smtp_server(tmp_path: Path, mailbox: Mailbox) -> None:
    good = make_settings(tmp_path / "a", None, smtp_url=mailbox.url())
    ok, detail, _ = email_check(await diagnose(good))
    assert ok and detail == f"127.0.0.1:{mailbox.port}, logged in as mailer"
    wrong = make_settings(tmp_path / "b", None, smtp_url=f"smtp://mailer:wrong@127.0.0.1:{mailbox.port}")
    ok, detail, fatal = email_check(await diagnose(wrong))
    assert not ok and not fatal and "SMTPAuthenticationError" in detail


@pytest.mark.parametrize("bad_server", ["refuse", "drop"], indirect=True)
async def test_doctor_reports_an_smtp_server_that_will_not_talk(tmp_path: Path, bad_server: BadServer) -> None:
    ok, detail, fatal = email_check(await diagnose(make_settings(tmp_path, None, smtp_url=bad_server.url)))
    assert not ok and not fatal and detail


async def test_doctor_without_smtp_names_the_mail_folder(tmp_path: Path) -> None:
    ok, detail, _ = email_check(await diagnose(make_settings(tmp_path / "data", None)))
    assert ok and detail == f"written to {tmp_path / 'data' / 'mail'} (no REELGATE_SMTP_URL)"
