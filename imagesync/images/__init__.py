"""What to sync: the images file, its diagnostics, and the rule that maps a source to its target."""
