"""rules.yaml loads, and a broken file fails with its line."""

import pytest

from streams.rules import RULES_FILE, load_rules
from streams.yamlconfig import ConfigError


def write(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_shipped_rules_load_with_a_version():
    rules = load_rules()
    assert rules.version and rules.tiers.low < rules.tiers.medium < rules.tiers.high


def test_unknown_key_names_its_line(tmp_path):
    text = RULES_FILE.read_text().replace("  phishing_link:\n", "  phishing_link:\n    wieght: 3\n", 1)
    line = text.splitlines().index("    wieght: 3") + 1
    with pytest.raises(ConfigError, match=rf"rules.yaml:{line}: signals.phishing_link.wieght"):
        load_rules(write(tmp_path, text))


def test_tiers_must_rise(tmp_path):
    text = RULES_FILE.read_text().replace("  medium: 60", "  medium: 20", 1)
    with pytest.raises(ConfigError, match="low < medium < high"):
        load_rules(write(tmp_path, text))


def test_a_window_longer_than_the_history_is_refused(tmp_path):
    text = RULES_FILE.read_text().replace("history_s: 604800", "history_s: 3600", 1)
    with pytest.raises(ConfigError, match="shorter than the longest signal window"):
        load_rules(write(tmp_path, text))
