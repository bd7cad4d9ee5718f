"""`antifraud up` and the desk: make run sends the human channels to the desk, and the person it
makes can sign in with the password printed once (never printed again, never logged)."""

from __future__ import annotations

import logging
import re

from oversight.db import migrate
from oversight.desk import people
from streams.settings import Settings
from streams.supervisor import DESK_PERSON, desk_channels, show_desk_person


def test_make_run_sends_the_human_channels_to_the_desk_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("ANTIFRAUD_DESK_CHANNELS", raising=False)
    assert desk_channels(Settings(), with_simulator=True) == ["police_visit", "hotline_call"]
    assert desk_channels(Settings(), with_simulator=False) == []  # the fault suite keeps the simulated gateway
    monkeypatch.setenv("ANTIFRAUD_DESK_CHANNELS", "[]")
    assert desk_channels(Settings(), with_simulator=True) == []
    monkeypatch.setenv("ANTIFRAUD_DESK_CHANNELS", '["hotline_call"]')
    assert desk_channels(Settings(), with_simulator=True) == ["hotline_call"]


def test_the_desk_person_signs_in_with_the_password_printed_once(tmp_path, capsys, caplog):
    settings = Settings(run_dir=tmp_path, database_url=None)
    caplog.set_level(logging.DEBUG)
    show_desk_person(settings, "http://127.0.0.1:8080/")
    first = capsys.readouterr().out
    user, unit, role = DESK_PERSON
    password = re.search(rf"sign in as {re.escape(user)} \({role}, {unit}\) with password (\S+)", first).group(1)
    show_desk_person(settings, "http://127.0.0.1:8080/")  # the next start of the same run directory
    assert password not in capsys.readouterr().out and password not in caplog.text
    assert f"sign in as {user}" in caplog.text
    engine = migrate(settings)
    try:
        with engine.begin() as conn:
            assert people.sign_in(conn, user, password, 60)[2].unit.name == unit
    finally:
        engine.dispose()
