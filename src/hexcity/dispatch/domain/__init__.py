"""Pure dispatch model and algorithms (no I/O): ping pipeline, matching, surge."""
