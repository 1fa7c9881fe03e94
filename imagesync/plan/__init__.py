"""The plan: the planner that decides, the document people review, the checks a saved plan must
pass before apply, the key that signs it, and the comparison of two plans."""
