"""``agi://…/selftest``: proves the path Asterisk → FastAGI → daemon works.

Answers, plays a beep, reads up to 3 DTMF digits, stores them in the channel
variable ``CC_SELFTEST_DIGITS`` (visible to AMI as a VarSet event), says them
back, and hangs up.
"""

from __future__ import annotations

from callcenter.adapters.fastagi import AgiSession

VARIABLE = "CC_SELFTEST_DIGITS"


async def selftest(session: AgiSession) -> None:
    await session.answer()
    digits = await session.get_data("beep", timeout_ms=5000, max_digits=3)
    await session.set_variable(VARIABLE, digits)
    if digits:
        await session.say_digits(digits)
    await session.hangup()
