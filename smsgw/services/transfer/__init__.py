"""Credit transfer ("line to line") at 1112."""
