"""Sample exports and their generator (`generate.py`); not part of the installed package."""
