"""User-facing errors: raised anywhere, printed by the CLI as one line that says what to do."""


class EcomError(Exception):
    """An error whose message is a complete, actionable sentence for the person at the terminal."""

    exit_code = 2
