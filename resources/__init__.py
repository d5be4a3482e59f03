"""The studio's data files: icons/*.svg. A package so that an installed studio carries them next to
the ui package that reads them (ui/icons.py)."""
