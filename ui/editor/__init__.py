"""The layer editor: palette, canvas, property panel and the undo commands they push."""
