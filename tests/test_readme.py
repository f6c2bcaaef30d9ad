"""The README stays the reference a newcomer and an operator read."""

from __future__ import annotations

from app.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    missing = [
        name for name, _, _ in Settings.describe() if f"| `{name}` |" not in README
    ]
    assert missing == []


def test_the_readme_opens_with_the_two_set_up_commands() -> None:
    first_block = README.split("```")[1]
    assert "scripts/serve" in first_block
    assert "scripts/test" in first_block
