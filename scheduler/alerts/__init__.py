"""Alerting on failed, missed and too-long runs: rules, incidents, the watchdog, channels."""
