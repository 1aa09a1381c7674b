"""Nightly incremental sync: the pieces that keep an Auth0 connection in step with a full export.

`state` (the SQLite state file), `diff` (tonight's classification), `promote` (which users Auth0
took) and `lock` (one sync at a time); `app.night` runs a night with them. See README "Nightly sync".
"""
