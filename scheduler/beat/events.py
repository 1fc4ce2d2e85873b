"""Signals about beat's loop, for work that rides on beat without beat knowing whose it is.

- ``loop_turned(clock)``: beat ended a pass of its loop (due runs sent, sweep, reaper) and is
  about to wait; ``clock`` is the time beat schedules by. Alerting's watchdog offers to run
  a pass here: the scheduler app's ``ready()`` connects it, as alerting imports nothing from
  beat.
"""

from __future__ import annotations

from django.dispatch import Signal

loop_turned = Signal()
