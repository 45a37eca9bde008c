"""fl_core."""
