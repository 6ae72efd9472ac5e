"""Text from outside (a provider's error echoing a member's prompt) cannot forge log lines
(issue 18): one record is one line, tracebacks aside."""

import logging

from bot.__main__ import setup_logging


def test_a_message_with_line_breaks_stays_on_one_line(capsys):
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        setup_logging("INFO")
        reason = "bad prompt\n[2026-12-03 10:00:00] [CRITICAL] bot: forged line\rmore"
        logging.getLogger("bot.jobs").warning("job %d: refunded: %s", 7, reason)
    finally:
        for handler in root.handlers[len(before):]:
            root.removeHandler(handler)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert "bad prompt\\n[2026-12-03 10:00:00] [CRITICAL] bot: forged line\\rmore" in lines[0]
