"""Apply: the applier that executes a saved plan, its progress display, and the report of what
it did."""
