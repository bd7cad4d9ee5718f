"""Oversight (监督): the ledger of every warning and what was done about it, the console and
dashboard that show it to each unit, the reverse audit of warned persons who still became a
case (预警成案倒查追责), and the follow-up sampling of dissuaded persons (定期回访抽查).

Stages talk to oversight only through topics; oversight never imports agents/ or channels/.
See docs/oversight.md.
"""

# streams.contracts registers this package's contracts (oversight.contracts); importing it
# first keeps that import order whichever module a process imports first.
import streams.contracts  # noqa: E402,F401
